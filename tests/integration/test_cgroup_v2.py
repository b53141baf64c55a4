"""cgroup v2 code paths of core/runtime/cgroups.py.

This host is hybrid: v1 owns the memory, cpu and pids controllers, and the
v2 hierarchy (mounted at /sys/fs/cgroup/unified) has none of them. What v2
gives every cgroup regardless of controllers -- cgroup.procs, cgroup.freeze
and cgroup.events, cgroup.kill, rmdir -- is exercised here for real, on that
hierarchy. The limit files (memory.max, memory.swap.max, cpu.max, pids.max)
cannot exist here, so their test writes into a directory tree shaped like a
v2 host's, and says so.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

import pytest

from berth.core.runtime import cgroups

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def v2_root(monkeypatch):
    if not os.path.exists(f"{UNIFIED}/cgroup.controllers"):
        pytest.fail("this test needs the host's cgroup v2 hierarchy at /sys/fs/cgroup/unified")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", UNIFIED)
    return UNIFIED


def test_a_v2_cgroup_holds_freezes_thaws_and_kills_a_process(v2_root):
    assert cgroups.is_v2()
    parent = f"berth-test-{secrets.token_hex(4)}"
    cg = cgroups.Cgroup.create(parent, "c1")
    proc = subprocess.Popen(["sleep", "60"])
    try:
        assert cg.dirs == {"": f"{UNIFIED}/{parent}/c1"}
        cg.add(proc.pid)  # a PID written to cgroup.procs
        assert cg.pids() == [proc.pid]
        assert cgroups.Cgroup.of_pid(proc.pid).dirs == cg.dirs
        cg.freeze()
        assert cg.is_frozen()
        cg.thaw()
        assert not cg.is_frozen()
        cg.kill()  # cgroup.kill where the kernel has it
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cg.remove()
    assert not os.path.exists(f"{UNIFIED}/{parent}")  # the test parent goes too


def test_a_process_joins_a_v2_cgroup_by_itself(v2_root):
    parent = f"berth-test-{secrets.token_hex(4)}"
    cg = cgroups.Cgroup.create(parent, "self")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the runtime's child: joins with pid 0 (cgroup.procs on v2, never tasks)
        try:
            cg.add(0)
            os.write(w, b"ok")
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 2) == b"ok"
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    deadline = time.monotonic() + 5
    while cg.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    cg.remove()
    assert not os.path.exists(f"{UNIFIED}/{parent}")


def test_v2_limits_are_written_in_the_kernels_formats(tmp_path, monkeypatch):
    """A stand-in tree: no v2 memory/cpu/pids controller can exist on this host."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", str(root))
    ctr = root / "berth" / "c2"
    ctr.mkdir(parents=True)
    for name in ("memory.max", "memory.swap.max", "cpu.max", "pids.max", "cgroup.subtree_control", "cpu.weight",
                 "cpuset.cpus", "memory.low"):
        (ctr / name).write_text("")
    (root / "berth" / "cgroup.subtree_control").write_text("")
    cgroups.Cgroup.create("berth", "c2", cgroups.Limits(memory=64 << 20, memory_swap=96 << 20, cpus=1.5,
                                                         pids_limit=50, cpu_shares=512, cpuset_cpus="0",
                                                         memory_reservation=32 << 20))
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu +pids +io +cpuset"
    assert (root / "berth" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids +io +cpuset"
    assert (ctr / "cpu.weight").read_text() == "20"  # Docker's shares -> weight: 1 + (512 - 2) * 9999 / 262142
    assert (ctr / "cpuset.cpus").read_text() == "0"
    assert (ctr / "memory.low").read_text() == str(32 << 20)
    assert (ctr / "memory.max").read_text() == str(64 << 20)
    assert (ctr / "memory.swap.max").read_text() == str(32 << 20)  # v2 counts swap alone
    assert (ctr / "cpu.max").read_text() == "150000 100000"
    assert (ctr / "pids.max").read_text() == "50"
    for name in ("memory.swap.max", "pids.max"):  # cgroupfs needs no truncation; this stand-in does
        (ctr / name).write_text("")
    cgroups.Cgroup("berth", "c2").set_limits(cgroups.Limits(memory=64 << 20, memory_swap=-1, pids_limit=0))
    assert (ctr / "memory.swap.max").read_text() == "max"
    assert (ctr / "pids.max").read_text() == "max"

