"""The low-level runtime with real processes, namespaces, mounts and cgroups.

Each test extracts a busybox root filesystem into a temporary directory and
runs real containers from it as root. Mounts live in the containers' own
mount namespaces (they die with them); cgroups are created under a
test-specific parent and removed through the runtime's API at teardown.
"""

from __future__ import annotations

import os
import secrets
import signal
import tarfile
import time
from pathlib import Path

import pytest

from berth.core.runtime import (
    Cgroup,
    CommandNotExecutable,
    CommandNotFound,
    ContainerSpec,
    Limits,
    Mount,
    ProcessSpec,
    StartError,
    exec_process,
    start,
)
from berth.core.runtime.cgroups import CGROUP_ROOT

pytestmark = pytest.mark.root


@pytest.fixture
def rootfs(tmp_path, rootfs_tar) -> Path:
    root = tmp_path / "rootfs"
    root.mkdir()
    with tarfile.open(rootfs_tar) as tar:
        tar.extractall(root, filter="tar")
    with open(root / "etc/group", "a") as f:
        f.write("staff:x:50:app\n")
    return root


class Cgroups:
    """Hands out cgroup names under a test-only parent; removes them all."""

    def __init__(self):
        self.parent = f"berth-test-{secrets.token_hex(4)}"
        self.names: list[str] = []

    def name(self) -> str:
        self.names.append(f"c{secrets.token_hex(4)}")
        return self.names[-1]

    def leftovers(self) -> list[str]:
        found = []
        for ctrl in os.listdir(CGROUP_ROOT):
            if os.path.exists(f"{CGROUP_ROOT}/{ctrl}/{self.parent}"):
                found.append(f"{CGROUP_ROOT}/{ctrl}/{self.parent}")
        if os.path.exists(f"{CGROUP_ROOT}/{self.parent}"):
            found.append(f"{CGROUP_ROOT}/{self.parent}")
        return found


@pytest.fixture
def cgroups():
    cg = Cgroups()
    yield cg
    for name in cg.names:
        Cgroup(cg.parent, name).remove()
    assert cg.leftovers() == []


@pytest.fixture
def reaper():
    """Kills and reaps every pid a test registers, even when it fails."""
    pids: list[int] = []
    yield pids
    # Reverse order: exec'd processes first. A dying container PID 1 waits
    # until every other process of its pid namespace has been reaped.
    for pid in reversed(pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def wait(pid: int, timeout: float = 10.0) -> int:
    """Exit code of child `pid` (128+signal when killed); kill on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("container did not exit in time")
        time.sleep(0.005)


def run(spec: ContainerSpec, before_exec=None, timeout: float = 10.0):
    """Start a container with piped stdout/stderr; return (code, out, err)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    spec.stdout, spec.stderr = out_w, err_w
    try:
        started = start(spec, before_exec=before_exec)
    finally:
        os.close(out_w)
        os.close(err_w)
    try:
        code = wait(started.pid, timeout)
        with os.fdopen(out_r, "rb") as o, os.fdopen(err_r, "rb") as e:
            return code, o.read().decode(), e.read().decode()
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise


def sh(rootfs: Path, script: str, **kw) -> ContainerSpec:
    return ContainerSpec(rootfs=rootfs, args=["sh", "-c", script], **kw)


def test_pid1_hostname_env_cwd_and_exit_code(rootfs):
    code, out, _ = run(sh(rootfs, 'echo $$; hostname; echo "$GREETING"; pwd; exit 3',
                          hostname="box1", env=["GREETING=hello world"], cwd="/tmp"))
    assert code == 3
    assert out.split("\n")[:4] == ["1", "box1", "hello world", "/tmp"]


def test_missing_working_dir_is_created(rootfs):
    code, out, _ = run(sh(rootfs, "pwd", cwd="/work/dir"))
    assert (code, out) == (0, "/work/dir\n")


def test_command_not_found_in_path(rootfs):
    with pytest.raises(CommandNotFound) as info:
        start(ContainerSpec(rootfs=rootfs, args=["nosuchcmd"]))
    assert info.value.exit_code == 127
    assert str(info.value) == 'exec: "nosuchcmd": executable file not found in $PATH'


def test_command_path_not_found(rootfs):
    with pytest.raises(CommandNotFound) as info:
        start(ContainerSpec(rootfs=rootfs, args=["/no/such"]))
    assert str(info.value) == "stat /no/such: no such file or directory"


def test_command_not_executable(rootfs):
    (rootfs / "etc/plain").write_text("data\n")
    with pytest.raises(CommandNotExecutable) as info:
        start(ContainerSpec(rootfs=rootfs, args=["/etc/plain"]))
    assert info.value.exit_code == 126
    assert str(info.value) == 'exec: "/etc/plain": permission denied'


def test_path_lookup_uses_container_path(rootfs):
    (rootfs / "opt/tools").mkdir(parents=True)
    (rootfs / "opt/tools/mytool").write_text("#!/bin/sh\necho found \"$@\"\n")
    os.chmod(rootfs / "opt/tools/mytool", 0o755)
    with pytest.raises(CommandNotFound):
        start(ContainerSpec(rootfs=rootfs, args=["mytool"]))
    code, out, _ = run(ContainerSpec(rootfs=rootfs, args=["mytool", "it"],
                                     env=["PATH=/opt/tools"]))
    assert (code, out) == (0, "found it\n")


@pytest.mark.parametrize("user, expected", [
    ("", "0 0 0"),
    ("app", "1000 1000 1000 50"),
    ("nobody", "65534 65534 65534"),
    ("1234:5678", "1234 5678 5678"),
    ("app:root", "1000 0 0"),
])
def test_user(rootfs, user, expected):
    code, out, _ = run(sh(rootfs, 'echo $(id -u) $(id -g) $(id -G)', user=user))
    assert (code, out.strip()) == (0, expected)


def test_user_home_from_passwd(rootfs):
    _, out, _ = run(sh(rootfs, 'echo $HOME', user="app"))
    assert out == "/home/app\n"


def test_unknown_user(rootfs):
    with pytest.raises(StartError) as info:
        start(sh(rootfs, "true", user="ghost"))
    assert str(info.value) == "unable to find user ghost: no matching entries in passwd file"
    assert info.value.exit_code == 125


def test_passwd_symlink_cannot_read_host_file(rootfs, tmp_path):
    host = tmp_path / "host-passwd"
    host.write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    (rootfs / "etc/passwd").unlink()
    os.symlink(str(host), rootfs / "etc/passwd")
    with pytest.raises(StartError, match="unable to find user hostonly"):
        start(sh(rootfs, "true", user="hostonly"))


def test_docker_default_capabilities_and_no_new_privs(rootfs):
    _, out, _ = run(sh(rootfs, "grep -E '^(CapEff|CapBnd|CapInh|NoNewPrivs)' /proc/self/status"))
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert fields == {"CapInh": "0000000000000000", "CapEff": "00000000a80425fb",
                      "CapBnd": "00000000a80425fb", "NoNewPrivs": "0"}  # Docker's: only when asked
    _, out, _ = run(sh(rootfs, "grep NoNewPrivs /proc/self/status", no_new_privs=True))
    assert out.split() == ["NoNewPrivs:", "1"]


def test_signals_default_in_container(rootfs):
    # Python ignores SIGPIPE; the container's command must not inherit that.
    code, out, _ = run(ContainerSpec(rootfs=rootfs, args=["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]))
    assert out.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"]


def test_seccomp_blocks_user_namespaces_and_keyrings(rootfs):
    script = "unshare -U true 2>/dev/null || echo userns-denied; grep -c Seccomp:.2 /proc/self/status; " \
             "(echo fork-ok)"
    _, out, _ = run(sh(rootfs, script))
    assert out.split() == ["userns-denied", "1", "fork-ok"]


def test_seccomp_unconfined_and_sys_admin(rootfs):
    _, out, _ = run(sh(rootfs, "unshare -U true && echo userns-ok", seccomp=False))
    assert out == "userns-ok\n"
    _, out, _ = run(sh(rootfs, "unshare -n true && echo netns-ok", cap_add=["SYS_ADMIN"]))
    assert out == "netns-ok\n"


def test_cap_add_and_drop(rootfs):
    _, out, _ = run(sh(rootfs, "grep CapEff /proc/self/status",
                       cap_add=["NET_ADMIN"], cap_drop=["cap_chown"]))
    assert out.split()[1] == f"{(0xa80425fb | 1 << 12) & ~1:016x}"


def test_non_root_user_has_no_effective_caps(rootfs):
    _, out, _ = run(sh(rootfs, "grep -E '^Cap(Eff|Bnd)' /proc/self/status", user="app"))
    assert out.split() == ["CapEff:", "0000000000000000", "CapBnd:", "00000000a80425fb"]


def test_masked_and_readonly_paths(rootfs):
    # Docker's masked paths that this kernel has (kcore is absent on some VMs).
    masked_files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    masked_dirs = [p for p in ("/proc/acpi", "/sys/firmware") if os.path.isdir(p)]
    assert masked_files and masked_dirs
    script = (f"cat {' '.join(masked_files)} | wc -c; ls -A {' '.join(masked_dirs)} | grep -v ':$' | grep -c .; "
              "echo h > /proc/sysrq-trigger && echo sysrq-writable; "
              "touch /sys/kernel/x 2>/dev/null || echo sys-ro; "
              "grep -E ' /proc/sys ' /proc/mounts | grep -c ' ro,'")
    code, out, _ = run(sh(rootfs, script))
    assert out.split() == ["0", "0", "sys-ro", "1"]


def test_minimal_dev(rootfs):
    _, out, _ = run(sh(rootfs, "ls /dev; ls /dev/pts; readlink /dev/ptmx; readlink /dev/fd"))
    assert out.split() == ["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random",
                           "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
                           "ptmx", "pts/ptmx", "/proc/self/fd"]


def test_devices_are_usable(rootfs):
    code, out, _ = run(sh(rootfs, "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo ok; "
                                  "head -c 8 /dev/urandom | wc -c; echo x > /dev/shm/f && cat /dev/shm/f"))
    assert (code, out.split()) == (0, ["4", "ok", "8", "x"])


def test_dev_symlink_in_image_stays_inside(rootfs, tmp_path):
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    os.rmdir(rootfs / "dev")
    os.symlink(str(host_dir), rootfs / "dev")
    code, out, _ = run(sh(rootfs, "echo x > /dev/null && ls /dev/zero"))
    assert (code, out) == (0, "/dev/zero\n")
    assert os.listdir(host_dir) == []
    assert (rootfs / str(host_dir).lstrip("/")).is_dir()  # the link was resolved inside


def test_fds_not_leaked(rootfs, tmp_path):
    leaked = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        _, out, _ = run(sh(rootfs, "ls /proc/self/fd"))
    finally:
        os.close(leaked)
    assert out.split() == ["0", "1", "2", "3"]  # 3: ls's own directory fd


def test_working_dir_proc_self_fd_does_not_escape(rootfs, tmp_path):
    host_dir = os.open(tmp_path, os.O_RDONLY)
    os.set_inheritable(host_dir, True)  # a leaked directory fd, as in CVE-2024-21626
    try:
        with pytest.raises(StartError, match="working directory"):
            start(sh(rootfs, "ls", cwd=f"/proc/self/fd/{host_dir}"))
    finally:
        os.close(host_dir)


def test_bind_mount_readonly_and_tmpfs(rootfs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("hi\n")
    mounts = [Mount(destination="/data", source=str(data), options=["ro"]),
              Mount(destination="/rw", source=str(data)),
              Mount(destination="/scratch", type="tmpfs", options=["size=1m"])]
    script = ("cat /data/hello; touch /data/x 2>/dev/null || echo refused; "
              "echo w > /rw/written; echo t > /scratch/t && cat /scratch/t; "
              "grep ' /scratch ' /proc/mounts | cut -d' ' -f3")
    code, out, _ = run(sh(rootfs, script, mounts=mounts))
    assert (code, out.split()) == (0, ["hi", "refused", "t", "tmpfs"])
    assert sorted(os.listdir(data)) == ["hello", "written"]


def test_mount_destination_symlink_cannot_redirect_outside(rootfs, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "payload").write_text("vol\n")
    os.symlink(str(victim), rootfs / "evil")
    code, out, _ = run(sh(rootfs, "cat /evil/payload",
                          mounts=[Mount(destination="/evil", source=str(volume))]))
    assert (code, out) == (0, "vol\n")
    assert os.listdir(victim) == []


def test_files_are_bound(rootfs, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost box\n")
    code, out, _ = run(sh(rootfs, "cat /etc/hosts", files={"/etc/hosts": str(hosts)}))
    assert out == "127.0.0.1 localhost box\n"


def test_readonly_rootfs(rootfs):
    code, out, _ = run(sh(rootfs, "touch /x 2>/dev/null || echo refused; echo y > /dev/shm/y && echo shm",
                          readonly_rootfs=True))
    assert out.split() == ["refused", "shm"]


def test_new_netns_has_only_loopback_up(rootfs):
    _, out, _ = run(sh(rootfs, "ls /sys/class/net; cat /sys/class/net/lo/operstate; "
                               "ping -c1 -W1 127.0.0.1 >/dev/null && echo ping"))
    assert out.split() == ["lo", "unknown", "ping"]


def test_host_and_joined_netns(rootfs, reaper):
    own = os.readlink("/proc/self/ns/net")
    first = start(ContainerSpec(rootfs=rootfs, args=["sleep", "30"], netns="host"))
    reaper.append(first.pid)
    assert os.readlink(first.netns_path) == own
    isolated = start(ContainerSpec(rootfs=rootfs, args=["sleep", "30"]))
    reaper.append(isolated.pid)
    assert os.readlink(isolated.netns_path) != own
    joined = start(ContainerSpec(rootfs=rootfs, args=["sleep", "30"], netns=isolated.netns_path))
    reaper.append(joined.pid)
    assert os.readlink(joined.netns_path) == os.readlink(isolated.netns_path)


def test_before_exec_runs_between_namespaces_and_exec(rootfs, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    seen = []

    def before_exec(pid):
        seen.append(os.readlink(f"/proc/{pid}/ns/net"))
        (shared / "ready").write_text("prepared\n")

    code, out, _ = run(sh(rootfs, "cat /shared/ready",
                          mounts=[Mount(destination="/shared", source=str(shared))]),
                       before_exec=before_exec)
    assert (code, out) == (0, "prepared\n")
    assert seen and seen[0] != os.readlink("/proc/self/ns/net")


def test_before_exec_failure_reaps_child_and_cgroup(rootfs, cgroups):
    name = cgroups.name()

    def before_exec(pid):
        raise RuntimeError("network setup failed")

    with pytest.raises(RuntimeError, match="network setup failed"):
        start(sh(rootfs, "true", cgroup_parent=cgroups.parent, cgroup_name=name),
              before_exec=before_exec)
    assert not Cgroup(cgroups.parent, name).exists()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_setup_failure_names_the_step(rootfs, tmp_path):
    with pytest.raises(StartError) as info:
        start(sh(rootfs, "true", mounts=[Mount(destination="/x", source=str(tmp_path / "missing"))]))
    assert info.value.step == "mount /x"
    assert "bind source path does not exist" in str(info.value)


def test_bad_limit_is_a_start_error(rootfs, cgroups):
    if not os.path.exists(f"{CGROUP_ROOT}/memory/memory.memsw.limit_in_bytes"):
        pytest.skip("kernel without cgroup v1 swap accounting")
    with pytest.raises(StartError) as info:
        start(sh(rootfs, "true", cgroup_parent=cgroups.parent, cgroup_name=cgroups.name(),
                 limits=Limits(memory=32 << 20, memory_swap=16 << 20)))  # swap below memory
    assert info.value.step == "cgroup"


def test_caller_can_still_fork_normally(rootfs):
    run(sh(rootfs, "true"))
    pid = os.fork()
    if pid == 0:
        os._exit(0 if os.getpid() > 1 else 9)
    assert wait(pid) == 0


def test_exec_process_joins_the_container(rootfs, reaper, cgroups):
    name = cgroups.name()
    started = start(ContainerSpec(rootfs=rootfs, args=["sleep", "30"], hostname="joined",
                                  cgroup_parent=cgroups.parent, cgroup_name=name))
    reaper.append(started.pid)
    out_r, out_w = os.pipe()
    pid = exec_process(started.pid, ProcessSpec(
        args=["sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; pwd; id -u; "
                          "grep CapEff /proc/self/status; ls /proc/self/fd"],
        cwd="/tmp", user="app", stdout=out_w, stderr=out_w))
    os.close(out_w)
    assert wait(pid) == 0
    with os.fdopen(out_r) as f:
        out = f.read().splitlines()
    assert out[:5] == ["joined", "sleep 30 ", "/tmp", "1000", "CapEff:\t0000000000000000"]
    assert out[5:] == ["0", "1", "2", "3"]
    long = exec_process(started.pid, ProcessSpec(args=["sleep", "30"]))
    reaper.append(long)
    assert long in Cgroup(cgroups.parent, name).pids()


def test_exec_process_not_found(rootfs, reaper):
    started = start(ContainerSpec(rootfs=rootfs, args=["sleep", "30"]))
    reaper.append(started.pid)
    with pytest.raises(CommandNotFound, match='exec: "nope": executable file not found'):
        exec_process(started.pid, ProcessSpec(args=["nope"]))


def test_tty(rootfs):
    master, slave = os.openpty()
    try:
        started = start(ContainerSpec(rootfs=rootfs, args=["sh", "-c", "[ -t 0 ] && echo tty-ok; ls /dev/console"],
                                      tty=True, stdin=slave, stdout=slave, stderr=slave))
        os.close(slave)
        slave = -1
        assert wait(started.pid) == 0
        data = b""
        while True:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the slave side is closed
                break
            if not chunk:
                break
            data += chunk
        assert b"tty-ok" in data and b"/dev/console" in data
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_memory_limit_oom_kills(rootfs, cgroups):
    name = cgroups.name()
    # one process grows (tail holds a line /dev/zero never ends): it is the one the kernel kills
    spec = sh(rootfs, "tail /dev/zero > /dev/null; echo rc=$?",
              cgroup_parent=cgroups.parent, cgroup_name=name,
              limits=Limits(memory=16 * 1024 * 1024))
    code, out, err = run(spec, timeout=30)
    assert out.strip() == "rc=137", (code, out, err)
    assert Cgroup(cgroups.parent, name).memory_oom_kills() >= 1


def test_pids_limit_stops_fork_loop(rootfs, cgroups):
    name = cgroups.name()
    spec = sh(rootfs, "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done 2>/dev/null; "
                      "echo; ls /proc | grep -c '^[0-9]'",
              cgroup_parent=cgroups.parent, cgroup_name=name, limits=Limits(pids_limit=10))
    out_r, out_w = os.pipe()
    spec.stdout = out_w
    started = start(spec)
    os.close(out_w)
    try:
        with os.fdopen(out_r) as f:
            f.readline()  # the loop is over
        assert len(started.cgroup.pids()) <= 10
    finally:
        started.cgroup.kill()
        wait(started.pid)


def test_cpu_limit_and_stats(rootfs, cgroups, reaper):
    name = cgroups.name()
    started = start(ContainerSpec(rootfs=rootfs, args=["sh", "-c", "while :; do :; done"],
                                  cgroup_parent=cgroups.parent, cgroup_name=name,
                                  limits=Limits(cpus=0.5, memory=64 * 1024 * 1024)))
    reaper.append(started.pid)
    time.sleep(0.5)
    stats = started.cgroup.stats()
    assert stats.pids == 1
    assert stats.memory_limit == 64 * 1024 * 1024
    assert 0.1e9 < stats.cpu_usage_ns < 0.4e9  # half a CPU for half a second


def test_freeze_thaw(rootfs, cgroups, tmp_path, reaper):
    name = cgroups.name()
    ticks = tmp_path / "ticks"
    ticks.mkdir()
    started = start(sh(rootfs, "while :; do echo x >> /t/ticks; usleep 5000; done",
                       mounts=[Mount(destination="/t", source=str(ticks))],
                       cgroup_parent=cgroups.parent, cgroup_name=name))
    reaper.append(started.pid)
    time.sleep(0.1)
    started.cgroup.freeze()
    assert started.cgroup.is_frozen()
    size = (ticks / "ticks").stat().st_size
    time.sleep(0.2)
    assert (ticks / "ticks").stat().st_size == size
    started.cgroup.thaw()
    time.sleep(0.2)
    assert (ticks / "ticks").stat().st_size > size
    assert started.cgroup.pids() == [started.pid] or started.pid in started.cgroup.pids()


def test_remove_kills_and_cleans(rootfs, cgroups):
    name = cgroups.name()
    started = start(sh(rootfs, "sleep 30 & sleep 30", cgroup_parent=cgroups.parent, cgroup_name=name))
    started.cgroup.freeze()
    started.cgroup.remove()
    assert wait(started.pid) == 128 + signal.SIGKILL
    assert cgroups.leftovers() == []
