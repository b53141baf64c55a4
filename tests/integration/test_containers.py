"""Real containers through the real CLI: exit codes, stdio, lifecycle, limits,
copy-on-write, events, and what happens when the monitor or the run
directory disappears. Every test leaves no mount, cgroup or process behind
(the `no_leaks` fixture checks it after the `berth` fixture's cleanup)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from harness import BERTH, inspect, wait_for


def _cgroup_dirs(container_id: str) -> list[str]:
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        candidate = base / "berth" / container_id
        if candidate.exists():
            found.append(str(candidate))
    if (Path("/sys/fs/cgroup/berth") / container_id).exists():
        found.append(f"/sys/fs/cgroup/berth/{container_id}")
    return found


@pytest.fixture
def ids(berth):
    """Collects container IDs a test made; after cleanup, none may leave a trace."""
    made: list[str] = []
    yield made
    berth.cleanup()
    mounts = Path("/proc/mounts").read_text()
    assert str(berth.root) not in mounts
    for cid in made:
        assert not _cgroup_dirs(cid), f"cgroup of {cid} left behind"
        out = subprocess.run(["pgrep", "-f", cid], capture_output=True, text=True).stdout
        assert not out.strip(), f"process of {cid} left behind"


def run_d(berth, ids, *argv) -> str:
    proc = berth("run", "-d", *argv, check=True)
    cid = proc.stdout.strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    ids.append(cid)
    return cid


# -- run: exit codes and stdio ---------------------------------------------------------------


def test_exit_codes(berth, ids):
    img = berth.image
    assert berth("run", "--rm", img, "true").returncode == 0
    assert berth("run", "--rm", img, "sh", "-c", "exit 3").returncode == 3
    nf = berth("run", "--rm", img, "nope")
    assert nf.returncode == 127
    assert 'exec: "nope": executable file not found in $PATH' in nf.stderr
    ne = berth("run", "--rm", img, "/etc/passwd")
    assert ne.returncode == 126
    bad_flag = berth("run", "--bogus", img, "true")
    assert bad_flag.returncode == 125
    # A registry on 127.0.0.1 where nothing listens: the pull is tried and fails in one line.
    missing = berth("run", "--rm", "127.0.0.1:9/nosuchimage", "true")
    assert missing.returncode == 125
    assert missing.stderr.splitlines()[0] == "Unable to find image '127.0.0.1:9/nosuchimage:latest' locally"
    assert len(missing.stderr.splitlines()) == 2 and missing.stderr.splitlines()[1].startswith("Error: ")
    assert berth("ps", "-aq").stdout.strip() == ""  # --rm: nothing left, failures included


def test_run_and_create_parse_without_click_and_bad_flags_go_to_click(berth, ids):
    """The console script takes `run`/`create` without importing click; a bad
    flag is handed to click, which reports it as for any other command. With
    its plugins recorded (the first command does that), a create imports
    none of the slow modules a start has no use for."""
    img = berth.image
    slow = ("click", "pluggy", "tomllib", "dataclasses", "typing", "inspect", "hashlib", "shutil")
    code = ("import sys\nfrom berth.core.cli.fast import fast\n"
            f"code = fast(sys.argv[1:])\nprint(code, [m for m in {slow!r} if m in sys.modules])")
    python = [sys.executable, "-c", code, *berth.args()]
    more = ["--add-host", "db:10.0.0.2", "--dns", "10.0.0.53", "--ulimit", "nofile=100", "--sysctl",
            "net.ipv4.ip_forward=1", "--cpuset-cpus", "0", "--security-opt", "no-new-privileges", "--init",
            "--pid", "host", "--device", "/dev/null:/dev/n", "--cap-add", "ALL", "--memory-reservation", "8m"]
    for name, flags in (("first", []), ("fast", []), ("flags", more)):
        proc = subprocess.run(python + ["create", "--name", name, *flags, img, "true"], capture_output=True,
                              text=True, env=berth.env)
        cid, rest = proc.stdout.split(maxsplit=1)
        ids.append(cid)
        if name != "first":
            assert rest.strip() == "0 []", proc.stderr
    proc = subprocess.run(python + ["create", "--bogus", img], capture_output=True, text=True, env=berth.env)
    assert proc.stdout.strip() == "None []"  # not taken: click will say what is wrong
    # inspect, which tools call once per container, is taken too
    proc = subprocess.run(python + ["inspect", "-f", "{{.Name}}", "fast", img], capture_output=True, text=True,
                          env=berth.env)
    lines = proc.stdout.splitlines()
    assert lines[0] == "/fast" and lines[-1].startswith("0 [") and "click" not in lines[-1], proc.stderr
    proc = subprocess.run(python + ["inspect", "nothing-here"], capture_output=True, text=True, env=berth.env)
    assert proc.stdout.splitlines()[-1].startswith("1 [") and proc.stderr == "Error: No such object: nothing-here\n"
    bad = berth("create", "--bogus", img)
    assert bad.returncode == 125
    assert bad.stderr.splitlines() == ["unknown flag: --bogus", "See 'berth create --help'."]
    assert sorted(berth("ps", "-a", "--format", "{{.Names}}").stdout.split()) == ["fast", "first", "flags"]


def test_relative_config_and_root_mean_the_callers_directory(berth, ids, tmp_path):
    """The monitor forks before reading the configuration and works from "/":
    a relative BERTH_CONFIG and --root are the caller's, for it as well."""
    work = tmp_path / "work"
    work.mkdir()
    # the test installation's own network settings (never a real berth0), and a log driver to see it read
    (work / "berth.toml").write_text(berth.config.read_text() + '[logging]\ndriver = "none"\n')
    env = dict(berth.env, BERTH_CONFIG="berth.toml")
    argv = BERTH + ["--root", "r", "--runroot", "s"]
    subprocess.run(argv + ["import", str(berth.rootfs), "rel"], cwd=work, env=env, check=True, capture_output=True)
    proc = subprocess.run(argv + ["run", "--name", "rel", "--network", "none", "rel", "echo", "relative"],
                          cwd=work, env=env, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, "relative\n"), proc.stderr
    out = subprocess.run(argv + ["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "rel"], cwd=work, env=env,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "none"
    subprocess.run(argv + ["rm", "rel"], cwd=work, env=env, check=True, capture_output=True)


def test_stdout_and_stderr_are_separate_and_stdin_reaches_the_container(berth, ids):
    p = berth("run", "--rm", berth.image, "sh", "-c", "echo out; echo err >&2")
    assert (p.stdout, p.stderr) == ("out\n", "err\n")
    p = berth("run", "--rm", "-i", berth.image, "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert p.stdout == "HELLO\n" and p.returncode == 0
    p = berth("run", "--rm", "-a", "stderr", berth.image, "sh", "-c", "echo out; echo err >&2")
    assert (p.stdout, p.stderr) == ("", "err\n")


def test_own_hostname_pid_1_env_and_config(berth, ids):
    p = berth("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000", "--hostname", "box", berth.image,
              "sh", "-c", "hostname; echo $$; echo $A; pwd; id -u", check=True)
    assert p.stdout.split() == ["box", "1", "1", "/tmp", "1000"]
    p = berth("run", "--rm", "--entrypoint", "echo", berth.image, "hi", check=True)
    assert p.stdout == "hi\n"


def test_pid_is_a_live_host_process_in_other_namespaces(berth, ids):
    cid = run_d(berth, ids, "--name", "ns", berth.image, "sleep", "1000")
    data = inspect(berth, "ns")
    pid = data["State"]["Pid"]
    assert data["State"]["Status"] == "running" and data["State"]["Running"] is True
    assert data["Name"] == "/ns" and data["Id"] == cid and data["Config"]["Hostname"] == cid[:12]
    assert os.path.exists(f"/proc/{pid}")
    for ns in ("pid", "mnt", "uts", "net", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"


# -- lifecycle ---------------------------------------------------------------------------------


def test_detached_then_stop_wait_start_and_rm(berth, ids):
    cid = run_d(berth, ids, "--name", "svc", berth.image, "sh", "-c",
                "echo started; trap 'exit 7' TERM; while true; do sleep 0.1; done")
    assert berth("rm", "svc").returncode == 1  # running: refused
    t = time.monotonic()
    assert berth("stop", "svc", check=True).stdout == "svc\n"
    assert time.monotonic() - t < 5  # the trap ran: no 10 s SIGKILL timeout
    data = inspect(berth, cid)
    assert data["State"]["Status"] == "exited" and data["State"]["ExitCode"] == 7
    assert berth("wait", "svc", check=True).stdout == "7\n"
    assert berth("start", "svc", check=True).stdout == "svc\n"
    assert inspect(berth, "svc")["State"]["Running"] is True
    assert berth("kill", "svc", check=True).stdout == "svc\n"
    assert berth("wait", "svc", check=True).stdout == "137\n"
    assert berth("rm", "svc", check=True).stdout == "svc\n"
    assert berth("ps", "-aq").stdout == ""
    assert "No such container: svc" in berth("rm", "svc").stderr


def test_attach_clients_that_vanish_mid_stream_leave_the_container_running(berth, ids):
    """A client killed while output flows: the monitor's send to it fails and
    its EOF arrives in the same round of events. The monitor drops it once
    and goes on (it used to die of a KeyError, which marked the container exited)."""
    cid = run_d(berth, ids, "--log-driver", "none", berth.image, "sh", "-c",
                "while true; do echo streaming-streaming-streaming-streaming; done")
    for _ in range(25):
        client = berth.popen("attach", "--no-stdin", cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.12)
        client.kill()
        client.wait()
    assert inspect(berth, cid)["State"]["Status"] == "running"
    log = berth.runroot / "containers" / cid / "monitor.log"
    assert "Traceback" not in (log.read_text() if log.exists() else "")
    berth("rm", "-f", cid, check=True)


def test_attach_to_detached_container(berth, ids):
    run_d(berth, ids, "-i", "--name", "att", berth.image, "sh", "-c", "read line; echo got $line; exit 5")
    proc = berth("attach", "att", input="ping\n", timeout=20)
    assert proc.stdout == "got ping\n"
    assert proc.returncode == 5


def test_name_conflict_concurrent_runs_exactly_one_wins(berth, ids):
    img = berth.image
    procs = [berth.popen("run", "-d", "--name", "dup", img, "sleep", "1000", stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    winners = [r for r in results if r[2] == 0]
    losers = [r for r in results if r[2] != 0]
    assert len(winners) == 1 and len(losers) == 1
    winner_id = winners[0][0].strip()
    ids.append(winner_id)
    assert losers[0][2] == 125
    assert (f'Conflict. The container name "/dup" is already in use by container "{winner_id}". '
            "You have to remove (or rename) that container to be able to reuse that name.") in losers[0][1]
    assert berth("ps", "-aq", "--no-trunc").stdout.split() == [winner_id]
    # The loser made no writable layer: only the winner's container dir exists in the driver.
    assert berth("rename", "dup", "dup2").returncode == 0
    assert inspect(berth, winner_id)["Name"] == "/dup2"


def test_pause_unpause(berth, ids):
    cid = run_d(berth, ids, "--name", "pz", berth.image, "sleep", "1000")
    assert berth("pause", "pz", check=True).stdout == "pz\n"
    assert inspect(berth, "pz")["State"]["Status"] == "paused"
    freezer = [d for d in _cgroup_dirs(cid) if "freezer" in d]
    if freezer:
        assert Path(freezer[0], "freezer.state").read_text().strip() == "FROZEN"
    assert berth("exec", "pz", "true").returncode == 1
    assert berth("unpause", "pz", check=True).stdout == "pz\n"
    assert inspect(berth, "pz")["State"]["Status"] == "running"
    assert berth("exec", "pz", "true").returncode == 0
    berth("pause", "pz", check=True)
    assert berth("rm", "-f", "pz", check=True).returncode == 0  # a paused container can be force-removed
    assert not _cgroup_dirs(cid)


def test_exec_and_top(berth, ids):
    run_d(berth, ids, "--name", "ex", "-e", "FROM_RUN=yes", berth.image, "sleep", "1000")
    p = berth("exec", "-e", "X=2", "-w", "/etc", "ex", "sh", "-c", "echo $FROM_RUN $X; pwd; exit 4")
    assert p.stdout == "yes 2\n/etc\n" and p.returncode == 4
    p = berth("exec", "-i", "ex", "cat", input="through stdin\n")
    assert p.stdout == "through stdin\n"
    assert berth("exec", "ex", "nope").returncode in (126, 127)
    assert berth("exec", "-d", "ex", "sleep", "999", check=True).returncode == 0
    top = berth("top", "ex", check=True).stdout.splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"]
    commands = [line.split(None, 7)[-1] for line in top[1:]]
    assert "sleep 1000" in commands and "sleep 999" in commands


# -- filesystem ------------------------------------------------------------------------------------


def test_copy_on_write_diff_and_commit(berth, ids):
    img = berth.image
    run_d(berth, ids, "--name", "cow", img, "sh", "-c", "echo new > /added; rm /etc/group; echo x >> /etc/passwd;"
          " sleep 1000")
    wait_for(lambda: "A /added" in berth("diff", "cow").stdout, what="the write to show in diff")
    lines = set(berth("diff", "cow", check=True).stdout.splitlines())
    assert {"A /added", "D /etc/group", "C /etc/passwd", "C /etc"} <= lines
    assert not any("hostname" in line or "resolv.conf" in line for line in lines)
    new_id = berth("commit", "-m", "snap", "-c", 'CMD ["cat", "/added"]', "cow", "snap:1", check=True).stdout.strip()
    assert new_id.startswith("sha256:") and len(new_id) == 71
    assert berth("run", "--rm", "snap:1", check=True).stdout == "new\n"
    assert berth("run", "--rm", "snap:1", "cat", "/etc/group").returncode == 1
    # The original image is unchanged.
    assert berth("run", "--rm", img, "cat", "/added").returncode == 1
    assert "root:x:0:" in berth("run", "--rm", img, "cat", "/etc/group", check=True).stdout
    image = json.loads(berth("inspect", "snap:1", check=True).stdout)[0]
    assert image["Parent"] == inspect(berth, "cow")["Image"]


def test_cp_both_ways_never_through_links(berth, ids, tmp_path):
    run_d(berth, ids, "--name", "cp", berth.image, "sh", "-c", "ln -s /etc /tmp/evil; ln -s / /tmp/root;"
          " mkdir /data; echo inside > /data/f; sleep 1000")
    wait_for(lambda: berth("exec", "cp", "test", "-f", "/data/f").returncode == 0, what="setup")
    src = tmp_path / "host.txt"
    src.write_text("from host\n")
    berth("cp", str(src), "cp:/tmp/", check=True)
    assert berth("exec", "cp", "cat", "/tmp/host.txt", check=True).stdout == "from host\n"
    # A link inside the container resolves inside it, never on the host.
    berth("cp", str(src), "cp:/tmp/evil/planted", check=True)
    assert not Path("/etc/planted").exists()
    assert berth("exec", "cp", "cat", "/etc/planted", check=True).stdout == "from host\n"
    out = tmp_path / "out"
    berth("cp", "cp:/data", str(out), check=True)
    assert (out / "f").read_text() == "inside\n"
    berth("cp", "cp:/tmp/root", str(tmp_path / "link"), check=True)
    assert os.readlink(tmp_path / "link") == "/"  # copied as a link, not followed
    missing = berth("cp", "cp:/nope", str(tmp_path / "x"))
    assert missing.returncode == 1 and "Could not find the file /nope in container cp" in missing.stderr


# -- limits ------------------------------------------------------------------------------------------


def test_memory_limit_kills_a_process_over_it(berth, ids):
    # /dev/shm is tmpfs: its pages are charged to the container's memory cgroup.
    p = berth("run", "--name", "mem", "-m", "16m", "--memory-swap", "16m", berth.image, "sh", "-c",
              "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>/dev/null; echo dd=$?", timeout=60)
    data = inspect(berth, "mem")
    ids.append(data["Id"])
    assert p.stdout == "dd=137\n"  # SIGKILLed by the OOM killer
    assert data["HostConfig"]["Memory"] == 16 * 1024 * 1024
    ok = berth("run", "--rm", "-m", "16m", berth.image, "sh", "-c",
               "dd if=/dev/zero of=/dev/shm/fill bs=1M count=4 2>/dev/null; echo dd=$?")
    assert ok.stdout == "dd=0\n"


def test_pids_limit(berth, ids):
    p = berth("run", "--rm", "--pids-limit", "5", berth.image, "sh", "-c",
              "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>/dev/null; echo started $(jobs -p | wc -l)")
    started = int(p.stdout.split()[-1]) if p.stdout.strip() else 0
    assert started < 8


# -- logs and events ------------------------------------------------------------------------------------


def test_logs_tail_since_follow(berth, ids):
    run_d(berth, ids, "--name", "lg", berth.image, "sh", "-c", "echo one; echo two >&2; echo three; sleep 1000")
    wait_for(lambda: "three" in berth("logs", "lg").stdout, what="logs")
    p = berth("logs", "lg", check=True)
    assert p.stdout == "one\nthree\n" and p.stderr == "two\n"
    tail = berth("logs", "--tail", "1", "lg", check=True)
    assert (tail.stdout + tail.stderr) in ("three\n", "two\n")  # stdout and stderr are read concurrently
    assert berth("logs", "--since", "1h", "lg", check=True).stdout == "one\nthree\n"
    stamped = berth("logs", "-t", "lg", check=True).stdout.splitlines()[0]
    assert stamped.endswith(" one") and stamped[:4].isdigit()
    follower = berth.popen("logs", "-f", "lg", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)
        berth("exec", "lg", "sh", "-c", "echo late > /proc/1/fd/1", check=True)
        berth("kill", "lg", check=True)
        out, _ = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert "late" in out


def test_logs_refused_by_a_driver_that_cannot_read(berth, ids):
    cid = run_d(berth, ids, "--log-driver", "none", berth.image, "true")
    p = berth("logs", cid)
    assert p.returncode == 1 and "configured logging driver does not support reading" in p.stderr


def test_events_seen_live_by_another_process(berth, ids):
    berth.image
    watcher = berth.popen("events", "--filter", "type=container", "--format", "json", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.7)
        berth("run", "--rm", "--name", "ev", berth.image, "sh", "-c", "exit 2")
        lines: list[dict] = []

        def collect():
            for line in watcher.stdout:
                lines.append(json.loads(line))
                if lines[-1]["Action"] == "destroy":
                    return

        t = threading.Thread(target=collect, daemon=True)
        t.start()
        t.join(10)
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            watcher.wait(5)
        except subprocess.TimeoutExpired:
            watcher.kill()
            watcher.wait()
    actions = [e["Action"] for e in lines]
    for wanted in ("create", "start", "die", "destroy"):
        assert wanted in actions
    die = next(e for e in lines if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "2"
    assert die["Actor"]["Attributes"]["name"] == "ev"


# -- failures: monitor killed, run directory wiped, --rm -------------------------------------------------


def _monitor_pid(berth, cid: str) -> int:
    import sqlite3

    db = sqlite3.connect(berth.root / "berth.db")
    try:
        state = json.loads(db.execute("SELECT state FROM containers WHERE id = ?", (cid,)).fetchone()[0])
    finally:
        db.close()
    return state["MonitorPid"]


def test_killed_monitor_does_not_leave_a_running_container(berth, ids):
    cid = run_d(berth, ids, "--name", "orphan", berth.image, "sleep", "1000")
    pid = inspect(berth, cid)["State"]["Pid"]
    os.kill(_monitor_pid(berth, cid), signal.SIGKILL)
    data = wait_for(lambda: (d := inspect(berth, cid))["State"]["Status"] == "exited" and d, what="exited")
    assert data["State"]["ExitCode"] == 137
    assert not os.path.exists(f"/proc/{pid}") or b"sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert not _cgroup_dirs(cid)
    assert berth("start", "orphan", check=True).returncode == 0  # and it can run again
    assert inspect(berth, cid)["State"]["Running"] is True


def test_wiped_run_directory_means_exited_and_nothing_breaks(berth, ids):
    cid = run_d(berth, ids, "--name", "boot", berth.image, "sleep", "1000")
    shutil.rmtree(berth.runroot)
    data = inspect(berth, cid)
    assert data["State"]["Status"] == "exited" and data["State"]["Running"] is False
    assert berth("ps", "-q").stdout == ""
    assert berth("start", "boot", check=True).returncode == 0
    assert berth("run", "--rm", berth.image, "echo", "ok", check=True).stdout == "ok\n"


def test_rm_leaves_nothing(berth, ids):
    berth("run", "--rm", "--name", "gone", berth.image, "true", check=True)
    assert berth("ps", "-aq").stdout == ""
    containers_dir = berth.runroot / "containers"
    assert not containers_dir.exists() or not any(containers_dir.iterdir())
    assert str(berth.root) not in Path("/proc/mounts").read_text()
