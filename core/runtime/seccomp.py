"""A seccomp filter in the spirit of Docker's default profile.

Docker allows a long list of syscalls; this is the converse, compact form:
deny (EPERM) the syscalls Docker's profile blocks by default, each group
only while the capability that Docker would allow it with is absent (so
--cap-add SYS_ADMIN re-enables mount, unshare, setns ...). clone() with
namespace flags is denied without SYS_ADMIN, clone3 returns ENOSYS so libc
falls back to clone. x86_64 only; on other architectures no filter is
installed. Calls through another ABI (i386, x32) are refused.
"""

import os
import struct

from berth.core.runtime.capabilities import NUMBERS

_AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# x86_64 syscall numbers.
_ALWAYS = {
    "keyctl": 250, "add_key": 248, "request_key": 249, "userfaultfd": 323,
    "kexec_load": 246, "kexec_file_load": 320, "lookup_dcookie": 212,
    "uselib": 134, "ustat": 136, "sysfs": 139, "_sysctl": 156,
    "nfsservctl": 180, "create_module": 174, "get_kernel_syms": 177,
    "query_module": 178, "vhangup": 153, "open_by_handle_at": 304,
}
_GATED = {
    "SYS_ADMIN": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272,
        "setns": 308, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "move_mount": 429, "open_tree": 428, "mount_setattr": 442,
        "quotactl": 179, "name_to_handle_at": 303, "bpf": 321,
        "perf_event_open": 298,
    },
    "SYS_MODULE": {"init_module": 175, "finit_module": 313, "delete_module": 176},
    "SYS_BOOT": {"reboot": 169},
    "SYS_PACCT": {"acct": 163},
    "SYS_TIME": {"settimeofday": 164, "clock_settime": 227, "adjtimex": 159,
                 "clock_adjtime": 305},
    "SYS_RAWIO": {"iopl": 172, "ioperm": 173},
    "SYSLOG": {"syslog": 103},
    "SYS_NICE": {"move_pages": 279, "mbind": 237, "set_mempolicy": 238,
                 "get_mempolicy": 239},
    "SYS_PTRACE": {"process_vm_readv": 310, "process_vm_writev": 311},
}
_CLONE = 56
_CLONE3 = 435


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def supported() -> bool:
    return os.uname().machine == "x86_64"  # (platform.machine() says the same; platform costs ~1.5 ms to import)


def program(cap_mask: int) -> bytes:
    """The BPF program for a container whose capabilities are cap_mask."""
    has = lambda cap: bool(cap_mask & (1 << NUMBERS[cap]))  # noqa: E731
    denied = set(_ALWAYS.values())
    for cap, calls in _GATED.items():
        if not has(cap):
            denied.update(calls.values())
    eperm = _RET_ERRNO | _EPERM
    out = [
        _ins(_LD_W_ABS, 4),                       # arch
        _ins(_JEQ_K, _AUDIT_ARCH_X86_64, 1, 0),
        _ins(_RET_K, eperm),
        _ins(_LD_W_ABS, 0),                       # nr
        _ins(_JGE_K, 0x40000000, 0, 1),           # x32 ABI
        _ins(_RET_K, eperm),
    ]
    for nr in sorted(denied):
        out += [_ins(_JEQ_K, nr, 0, 1), _ins(_RET_K, eperm)]
    if not has("SYS_ADMIN"):
        out += [
            _ins(_JEQ_K, _CLONE3, 0, 1), _ins(_RET_K, _RET_ERRNO | _ENOSYS),
            _ins(_JEQ_K, _CLONE, 0, 3),
            _ins(_LD_W_ABS, 16),                  # args[0], low 32 bits
            _ins(_JSET_K, _CLONE_NS_FLAGS, 0, 1),
            _ins(_RET_K, eperm),
        ]
    out.append(_ins(_RET_K, _RET_ALLOW))
    return b"".join(out)
