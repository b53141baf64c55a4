"""A seccomp filter in the spirit of Docker's default profile, per architecture.

Docker allows a long list of syscalls; this is the converse, compact form:
deny (EPERM) the syscalls Docker's profile blocks by default, each group
only while the capability that Docker would allow it with is absent (so
--cap-add SYS_ADMIN re-enables mount, unshare, setns ...). clone() with
namespace flags is denied without SYS_ADMIN, clone3 returns ENOSYS so libc
falls back to clone. Calls through another ABI (i386 or x32 on x86_64) are
refused.

The program is built by libseccomp (Debian's libseccomp2, through ctypes),
which knows every architecture's syscall numbers and argument layout: the
rules name syscalls, never numbers. Without libseccomp no filter is
installed (as Docker without seccomp support).
"""

import ctypes
import errno
import os
import struct

from berth.core.runtime.capabilities import NUMBERS

_AUDIT_ARCH_X86_64 = 0xC000003E  # (Docker JSON profiles below are compiled for x86_64)
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM = 1
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06

_CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
# NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET

_ALWAYS = (
    "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load", "kexec_file_load", "lookup_dcookie",
    "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "create_module", "get_kernel_syms", "query_module",
    "vhangup", "open_by_handle_at",
)
_GATED = {
    "SYS_ADMIN": ("mount", "umount2", "umount", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
                  "fspick", "move_mount", "open_tree", "mount_setattr", "quotactl", "name_to_handle_at", "bpf",
                  "perf_event_open"),
    "SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "SYS_BOOT": ("reboot",),
    "SYS_PACCT": ("acct",),
    "SYS_TIME": ("settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "stime"),
    "SYS_RAWIO": ("iopl", "ioperm"),
    "SYSLOG": ("syslog",),
    "SYS_NICE": ("move_pages", "mbind", "set_mempolicy", "get_mempolicy"),
    "SYS_PTRACE": ("process_vm_readv", "process_vm_writev"),
}

# libseccomp's enums (seccomp.h)
_FLTATR_ACT_BADARCH = 2
_CMP_MASKED_EQ = 7
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_lib = None


def _libseccomp():
    """libseccomp through ctypes, or None where it is not installed."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            _lib = False
            return None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib or None


def supported() -> bool:
    return _libseccomp() is not None


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"libseccomp: {what}: {os.strerror(-rc)}")


def program(cap_mask: int) -> bytes | None:
    """The BPF program for a container whose capabilities are cap_mask, for this host's
    architecture (None without libseccomp)."""
    lib = _libseccomp()
    if lib is None:
        return None
    has = lambda cap: bool(cap_mask & (1 << NUMBERS[cap]))  # noqa: E731
    eperm = _RET_ERRNO | _EPERM
    denied = list(_ALWAYS)
    for cap, calls in _GATED.items():
        if not has(cap):
            denied += calls
    ctx = lib.seccomp_init(_RET_ALLOW)
    if not ctx:
        raise OSError(errno.ENOMEM, "libseccomp: seccomp_init failed")
    try:
        _check(lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, eperm), "bad-architecture action")
        for name in denied:
            _rule(lib, ctx, eperm, name)
        if not has("SYS_ADMIN"):
            _rule(lib, ctx, _RET_ERRNO | errno.ENOSYS, "clone3")
            flags_arg = 1 if os.uname().machine.startswith("s390") else 0  # clone(stack, flags) there
            for flag in _CLONE_NS_FLAGS:
                _rule(lib, ctx, eperm, "clone", _ArgCmp(flags_arg, _CMP_MASKED_EQ, flag, flag))
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _rule(lib, ctx, action: int, name: str, *args: _ArgCmp) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr == _NR_SCMP_ERROR:
        return  # no such syscall on this architecture
    array = (_ArgCmp * len(args))(*args) if args else None
    _check(lib.seccomp_rule_add_array(ctx, action, nr, len(args), array), f"rule for {name}")


def _export(lib, ctx) -> bytes:
    fd = os.memfd_create("berth-seccomp", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "export")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


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
