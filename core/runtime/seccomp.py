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


# -- Docker's JSON profiles (--security-opt seccomp=PROFILE.json) ------------------------

_ACTIONS = {"SCMP_ACT_ALLOW": _RET_ALLOW, "SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0,
            "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_LOG": 0x7FFC0000}
_LD_W_ABS_ARGS = 16  # offsetof(struct seccomp_data, args)
_AND_K = 0x54
_JGT_K = 0x25


def _action(name, errno_ret=None) -> int:
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        return (_RET_ERRNO if name == "SCMP_ACT_ERRNO" else 0x7FF00000) | (errno_ret if errno_ret is not None
                                                                           else _EPERM)
    if name not in _ACTIONS:
        raise ValueError(f"unknown action {name!r}")
    return _ACTIONS[name]


def _applies(entry: dict, cap_mask: int) -> bool:
    """A rule's includes/excludes: capabilities and architectures (this is x86_64)."""
    def caps(names):
        return [bool(cap_mask & (1 << NUMBERS[n.upper().removeprefix("CAP_")]))
                for n in names or () if n.upper().removeprefix("CAP_") in NUMBERS]

    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    if inc.get("arches") and not {"amd64", "x86_64"} & set(inc["arches"]):
        return False
    if exc.get("arches") and {"amd64", "x86_64"} & set(exc["arches"]):
        return False
    if inc.get("caps") and not all(caps(inc["caps"])):
        return False
    if exc.get("caps") and any(caps(exc["caps"])):
        return False
    return True


def _condition(arg: dict, ok: str, fail: str) -> list:
    """Instructions testing one argument condition (64-bit, as two 32-bit words)."""
    index, op = int(arg["index"]), arg["op"]
    value, two = int(arg.get("value") or 0), int(arg.get("valueTwo") or 0)
    lo, hi = _LD_W_ABS_ARGS + 8 * index, _LD_W_ABS_ARGS + 8 * index + 4
    vlo, vhi = value & 0xFFFFFFFF, value >> 32
    if op == "SCMP_CMP_MASKED_EQ":
        return [(_LD_W_ABS, hi, None, None), (_AND_K, vhi, None, None), (_JEQ_K, two >> 32, None, fail),
                (_LD_W_ABS, lo, None, None), (_AND_K, vlo, None, None), (_JEQ_K, two & 0xFFFFFFFF, ok, fail)]
    if op == "SCMP_CMP_EQ":
        return [(_LD_W_ABS, hi, None, None), (_JEQ_K, vhi, None, fail), (_LD_W_ABS, lo, None, None),
                (_JEQ_K, vlo, ok, fail)]
    if op == "SCMP_CMP_NE":
        return [(_LD_W_ABS, hi, None, None), (_JEQ_K, vhi, None, ok), (_LD_W_ABS, lo, None, None),
                (_JEQ_K, vlo, fail, ok)]
    if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        low = (_JGT_K if op == "SCMP_CMP_GT" else _JGE_K, vlo, ok, fail)
        return [(_LD_W_ABS, hi, None, None), (_JGT_K, vhi, ok, None), (_JEQ_K, vhi, None, fail),
                (_LD_W_ABS, lo, None, None), low]
    if op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        low = (_JGE_K if op == "SCMP_CMP_LT" else _JGT_K, vlo, fail, ok)
        return [(_LD_W_ABS, hi, None, None), (_JGT_K, vhi, fail, None), (_JEQ_K, vhi, None, ok),
                (_LD_W_ABS, lo, None, None), low]
    raise ValueError(f"unknown operator {op!r}")


def compile_profile(text: str, cap_mask: int) -> bytes:
    """A Docker seccomp profile (JSON text) as a BPF program for x86_64.

    defaultAction/defaultErrnoRet; syscalls[].names (or .name), .action,
    .errnoRet, .args (index, value, valueTwo, op: all must hold) and
    .includes/.excludes (caps, arches). Names this kernel's table lacks are
    skipped, as libseccomp does. Raises ValueError for a malformed profile."""
    import json

    from berth.core.runtime.syscall_numbers import NUMBERS as SYSCALLS

    profile = json.loads(text)
    if not isinstance(profile, dict):
        raise ValueError("a profile is a JSON object")
    default = _action(profile.get("defaultAction") or "SCMP_ACT_ALLOW", profile.get("defaultErrnoRet"))
    rules: dict[int, list] = {}
    for entry in profile.get("syscalls") or ():
        if not _applies(entry, cap_mask):
            continue
        action = _action(entry.get("action"), entry.get("errnoRet"))
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        for name in names:
            if name in SYSCALLS:
                rules.setdefault(SYSCALLS[name], []).append((entry.get("args") or [], action))
    code: list = [(_LD_W_ABS, 4, None, None), (_JEQ_K, _AUDIT_ARCH_X86_64, "native", None),
                  (_RET_K, _RET_ERRNO | _EPERM, None, None), ("label", "native"),
                  (_LD_W_ABS, 0, None, None), (_JGE_K, 0x40000000, None, "syscalls"),
                  (_RET_K, _RET_ERRNO | _EPERM, None, None), ("label", "syscalls")]
    for nr, entries in rules.items():
        code.append((_JEQ_K, nr, None, f"after{nr}"))
        for i, (args, action) in enumerate(entries):
            fail = f"entry{nr}.{i + 1}"
            for j, arg in enumerate(args):
                code += _condition(arg, f"cond{nr}.{i}.{j + 1}", fail) + [("label", f"cond{nr}.{i}.{j + 1}")]
            code += [(_RET_K, action, None, None), ("label", fail)]
        code += [(_RET_K, default, None, None), ("label", f"after{nr}"), (_LD_W_ABS, 0, None, None)]
    code.append((_RET_K, default, None, None))
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """Resolve ("label", name) targets into relative jumps (each at most 255 forward)."""
    positions, index = {}, 0
    for ins in code:
        if ins[0] == "label":
            positions[ins[1]] = index
        else:
            index += 1
    out, index = [], 0
    for ins in code:
        if ins[0] == "label":
            continue
        op, k, jt, jf = ins
        offsets = [0 if target is None else positions[target] - index - 1 for target in (jt, jf)]
        if not all(0 <= o <= 255 for o in offsets):
            raise ValueError("seccomp profile too large to compile")
        out.append(_ins(op, k, *offsets))
        index += 1
    if len(out) > 4096:
        raise ValueError("seccomp profile too large to compile")
    return b"".join(out)
