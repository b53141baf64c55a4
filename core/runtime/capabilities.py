"""Linux capabilities: Docker's default set, --cap-add/--cap-drop, dropping.

`resolve` runs in the caller (validates names, so a typo is an error before
anything starts); `drop_to` runs in the child just before exec.
"""

from berth.core.errors import InvalidArgument
from berth.core.runtime import syscalls

NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
    "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}

DEFAULT = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
    "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
    "AUDIT_WRITE",
)


def mask_of(names) -> int:
    mask = 0
    for name in names:
        mask |= 1 << NUMBERS[name]
    return mask


DEFAULT_MASK = mask_of(DEFAULT)  # 0xa80425fb


def last_cap() -> int:
    """Highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def bounding() -> int:
    """This process's bounding set: the capabilities it can hand on."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapBnd:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return (1 << (last_cap() + 1)) - 1


def _normalize(name: str, flag: str) -> str:
    upper = name.strip().upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if upper != "ALL" and upper not in NUMBERS:
        raise InvalidArgument(f'invalid {flag}: unknown capability: "CAP_{upper}"')
    return upper


def resolve(cap_add=(), cap_drop=()) -> int:
    """Docker's default set with cap_add/cap_drop applied, as a bit mask.

    As in Docker, "ALL" in cap_add starts from every capability, "ALL" in
    cap_drop from none; then explicit names are added/dropped.
    """
    adds = [_normalize(n, "CapAdd") for n in cap_add]
    drops = [_normalize(n, "CapDrop") for n in cap_drop]
    full = (1 << (last_cap() + 1)) - 1
    mask = DEFAULT_MASK
    if "ALL" in drops:
        mask = 0
    if "ALL" in adds:
        mask = full & bounding()  # what this host can grant
    for name in drops:
        if name != "ALL":
            mask &= ~(1 << NUMBERS[name])
    for name in adds:
        if name != "ALL":
            mask |= 1 << NUMBERS[name]
    return mask & full


def drop_bounding(mask: int, last: int) -> None:
    """Remove every capability outside `mask` from the bounding set."""
    for cap in range(last + 1):
        if not mask & (1 << cap):
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)


def apply(mask: int) -> None:
    """Set permitted and effective to `mask`, inheritable and ambient empty.

    For a non-root user the kernel then drops them at execve (no file
    capabilities, no ambient), as with Docker.
    """
    syscalls.capset(mask, mask, 0)
    try:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernel without ambient capabilities
