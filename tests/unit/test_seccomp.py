"""The default seccomp filter, built by libseccomp per architecture (issue #11), decides
every x86_64 syscall exactly as the hand-assembled x86_64 filter berth used before: both
programs are run by a small classic-BPF interpreter over every syscall number, both ABIs
berth refuses (i386, x32), clone's namespace flags and several capability sets."""

from __future__ import annotations

import os
import struct

import pytest

from berth.core.runtime import capabilities, seccomp
from berth.core.runtime.capabilities import NUMBERS

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003

# -- the hand-built filter, as it was (x86_64 numbers) ------------------------------------

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
    "SYS_TIME": {"settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305},
    "SYS_RAWIO": {"iopl": 172, "ioperm": 173},
    "SYSLOG": {"syslog": 103},
    "SYS_NICE": {"move_pages": 279, "mbind": 237, "set_mempolicy": 238, "get_mempolicy": 239},
    "SYS_PTRACE": {"process_vm_readv": 310, "process_vm_writev": 311},
}


def _ins(code, k, jt=0, jf=0):
    return struct.pack("=HBBI", code, jt, jf, k)


def hand_built(cap_mask: int) -> bytes:
    has = lambda cap: bool(cap_mask & (1 << NUMBERS[cap]))  # noqa: E731
    denied = set(_ALWAYS.values())
    for cap, calls in _GATED.items():
        if not has(cap):
            denied.update(calls.values())
    eperm = 0x00050001
    out = [_ins(0x20, 4), _ins(0x15, AUDIT_ARCH_X86_64, 1, 0), _ins(0x06, eperm), _ins(0x20, 0),
           _ins(0x35, 0x40000000, 0, 1), _ins(0x06, eperm)]
    for nr in sorted(denied):
        out += [_ins(0x15, nr, 0, 1), _ins(0x06, eperm)]
    if not has("SYS_ADMIN"):
        out += [_ins(0x15, 435, 0, 1), _ins(0x06, 0x00050000 | 38), _ins(0x15, 56, 0, 3), _ins(0x20, 16),
                _ins(0x45, 0x7E020000, 0, 1), _ins(0x06, eperm)]
    out.append(_ins(0x06, 0x7FFF0000))
    return b"".join(out)


# -- a classic BPF interpreter (what seccomp programs use) --------------------------------


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]


def run_bpf(insns: list, data: bytes) -> int:
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if code == 0x20:  # ld w abs
            a = int.from_bytes(data[k:k + 4], "little")
        elif code == 0x00:  # ld imm
            a = k
        elif code == 0x01:  # ldx imm
            x = k
        elif code == 0x60:  # ld mem
            a = mem[k]
        elif code == 0x61:  # ldx mem
            x = mem[k]
        elif code == 0x02:  # st
            mem[k] = a
        elif code == 0x03:  # stx
            mem[k] = x
        elif code == 0x07:  # tax
            x = a
        elif code == 0x87:  # txa
            a = x
        elif cls == 0x04:  # alu
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x50:
                a &= src
            elif op == 0x40:
                a |= src
            elif op == 0x00:
                a = (a + src) & 0xFFFFFFFF
            elif op == 0x10:
                a = (a - src) & 0xFFFFFFFF
            elif op == 0x60:
                a = (a << src) & 0xFFFFFFFF if src < 32 else 0
            elif op == 0x70:
                a = a >> src if src < 32 else 0
            else:
                raise AssertionError(f"alu opcode {code:#x} not interpreted")
        elif cls == 0x05:  # jmp
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            if op == 0x10:
                taken = a == src
            elif op == 0x20:
                taken = a > src
            elif op == 0x30:
                taken = a >= src
            elif op == 0x40:
                taken = bool(a & src)
            else:
                raise AssertionError(f"jump opcode {code:#x} not interpreted")
            pc += jt if taken else jf
        elif cls == 0x06:  # ret
            return k if code == 0x06 else a
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")


def seccomp_data(nr: int, arch: int, args=(0, 0, 0, 0, 0, 0)) -> bytes:
    return struct.pack("<iIQ6Q", nr, arch, 0, *args)


def cases():
    for nr in range(0, 600):
        yield seccomp_data(nr, AUDIT_ARCH_X86_64)
    for nr in (0, 1, 56, 59, 0x40000000, 0x40000000 + 56, 0x40000000 + 513):  # x32
        yield seccomp_data(nr, AUDIT_ARCH_X86_64)
    for nr in (0, 1, 11, 120, 252):  # i386 through int 0x80
        yield seccomp_data(nr, AUDIT_ARCH_I386)
    flags = [0, 0x11, 0x01200011, 0x3D0F00, 0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
             0x20000000, 0x40000000, 0x7E020000, 0xFFFFFFFF, 0x1_0000_0000, 0xFFFF_FFFF_0000_0011]
    for value in flags:
        yield seccomp_data(56, AUDIT_ARCH_X86_64, (value, 0, 0, 0, 0, 0))


CAP_SETS = {
    "default": capabilities.resolve(),
    "sys_admin": capabilities.resolve(cap_add=["SYS_ADMIN"]),
    "several": capabilities.resolve(cap_add=["SYS_TIME", "SYS_PTRACE", "SYS_NICE", "SYSLOG"]),
    "none": capabilities.resolve(cap_drop=["ALL"]),
    "all": sum(1 << n for n in NUMBERS.values()),
}


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the hand-built filter was for x86_64 only")
@pytest.mark.parametrize("caps", sorted(CAP_SETS))
def test_libseccomp_filter_decides_as_the_hand_built_one(caps):
    assert seccomp.supported(), "libseccomp.so.2 (Debian's libseccomp2) is needed"
    mask = CAP_SETS[caps]
    built, reference = decode(seccomp.program(mask)), decode(hand_built(mask))
    differences = []
    for data in cases():
        got, want = run_bpf(built, data), run_bpf(reference, data)
        if got != want:
            nr, arch, _ip, arg0 = struct.unpack_from("<iIQQ", data)
            differences.append(f"nr={nr:#x} arch={arch:#x} arg0={arg0:#x}: {got:#x} != {want:#x}")
    assert not differences, "\n".join(differences[:20])


def test_the_filter_is_built_for_this_architecture_by_name():
    """Rules name syscalls; libseccomp gives each architecture its own numbers."""
    program = seccomp.program(capabilities.resolve())
    assert program and len(program) % 8 == 0
    arch_check = struct.unpack_from("=HBBI", program, 8)  # ld arch, then jeq AUDIT_ARCH_<this host>
    assert arch_check[0] == 0x15 and arch_check[3] & 0x80000000  # a 64-bit AUDIT_ARCH
