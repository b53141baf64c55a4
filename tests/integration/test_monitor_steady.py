"""A detached container's monitor hands off to its small steady state
(berth.core.containers.steady: ``python -S -I`` with C modules only) and
goes on doing everything the full monitor did: the json-file log (16K
splits, rotation), attach with input, the exit record, --rm, restarts and
`update --restart` of a running container. A monitor that needs more (a log
driver without a handoff, a health check) stays whole. The memory this saves
is measured by bench/run.py's scale scenario, not here."""

from __future__ import annotations

import json
import os

from harness import inspect, wait_for
from test_restart import monitor_pid


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def steady(berth, ref: str) -> bool:
    """Whether the container's monitor runs the steady state now."""
    args = cmdline(monitor_pid(berth, ref))
    return "-S" in args and any(a.endswith("steady.py") for a in args)


def wait_steady(berth, ref: str) -> None:
    wait_for(lambda: steady(berth, ref), what="the monitor's hand-off")


def json_log(berth, ref: str) -> list[dict]:
    path = inspect(berth, ref)["LogPath"]
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_logs_exit_and_rm_through_the_steady_state(berth):
    berth("run", "-d", "-i", "--name", "talk", "--network", "none", berth.image,
          "sh", "-c", "read x; echo out-$x; echo err >&2; head -c 20000 /dev/zero | tr '\\0' a; echo; exit 7",
          check=True)
    wait_steady(berth, "talk")
    pid = monitor_pid(berth, "talk")
    # input through attach reaches the process; its output comes back and goes to the log
    attach = berth("attach", "talk", input="hello\n", timeout=30)
    assert attach.returncode == 7
    assert "out-hello" in attach.stdout
    wait_for(lambda: inspect(berth, "talk")["State"]["Status"] == "exited", what="the exit")
    state = inspect(berth, "talk")["State"]
    assert state["ExitCode"] == 7 and state["FinishedAt"] > state["StartedAt"]
    entries = json_log(berth, "talk")
    assert [(e["stream"], e["log"]) for e in entries[:2]] == [("stdout", "out-hello\n"), ("stderr", "err\n")]
    assert [len(e["log"]) for e in entries[2:]] == [16 * 1024, 20000 - 16 * 1024 + 1]  # Docker's 16K split
    assert all(e["time"].endswith("Z") for e in entries)
    assert berth("logs", "talk", check=True).stdout.startswith("out-hello\n")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), what="the monitor's end")
    # --rm: the steady state comes back to remove it
    berth("run", "-d", "--rm", "--name", "brief", "--network", "none", berth.image, "sleep", "1", check=True)
    wait_steady(berth, "brief")
    wait_for(lambda: berth("inspect", "brief").returncode == 1, what="the removal")


def test_rotation_in_the_steady_state(berth):
    berth("run", "-d", "--name", "chatty", "--network", "none", "--log-opt", "max-size=2k", "--log-opt",
          "max-file=2", berth.image, "sh", "-c", "sleep 1; for i in $(seq 200); do echo line-$i; done; sleep 300",
          check=True)
    wait_steady(berth, "chatty")
    wait_for(lambda: "line-200\n" in berth("logs", "--tail", "1", "chatty").stdout, what="the last line")
    path = inspect(berth, "chatty")["LogPath"]
    assert os.path.getsize(path + ".1") >= 2000 and not os.path.exists(path + ".2")
    lines = berth("logs", "chatty", check=True).stdout.splitlines()
    assert lines[-1] == "line-200" and lines == [f"line-{i}" for i in range(201 - len(lines), 201)]
    assert steady(berth, "chatty")
    berth("rm", "-f", "chatty", check=True)


def test_restarts_across_the_steady_state(berth):
    berth("run", "-d", "--name", "again", "--network", "none", "--restart", "on-failure:2", berth.image,
          "sh", "-c", "echo ran; sleep 1; exit 3", check=True)
    wait_steady(berth, "again")
    wait_for(lambda: inspect(berth, "again")["State"]["Status"] == "exited", what="the last exit", timeout=30)
    info = inspect(berth, "again")
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 3
    assert berth("logs", "again", check=True).stdout == "ran\n" * 3
    # a policy given to a running container holds when its process exits (the full monitor reads it)
    berth("run", "-d", "--name", "later", "--network", "none", berth.image, "sh", "-c", "sleep 1; exit 1",
          check=True)
    wait_steady(berth, "later")
    berth("update", "--restart", "on-failure:1", "later", check=True)
    wait_for(lambda: inspect(berth, "later")["RestartCount"] == 1
             and inspect(berth, "later")["State"]["Status"] == "exited", what="one restart", timeout=30)


def test_health_checks_come_back_to_the_full_monitor(berth):
    """Between probes the monitor is the steady state; each probe runs in the full monitor.
    (Only when the next probe is steady_probe_gap seconds away, 10 by default: this test's is 0.5.)"""
    with open(berth.config, "a") as f:
        f.write("[monitor]\nsteady_probe_gap = 0.5\n")
    berth("run", "-d", "--name", "checked", "--network", "none", "--health-cmd", "test ! -e /tmp/sick",
          "--health-interval", "1s", "--health-retries", "2", berth.image, "sleep", "300", check=True)
    wait_steady(berth, "checked")
    wait_for(lambda: inspect(berth, "checked")["State"]["Health"]["Status"] == "healthy", what="healthy")
    wait_for(lambda: len(inspect(berth, "checked")["State"]["Health"]["Log"]) >= 3, what="three probes")
    wait_steady(berth, "checked")
    berth("exec", "checked", "touch", "/tmp/sick", check=True)
    wait_for(lambda: inspect(berth, "checked")["State"]["Health"]["Status"] == "unhealthy", what="unhealthy")
    health = inspect(berth, "checked")["State"]["Health"]
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    events = berth("events", "--since", "1m", "--until", "0s", "--filter", "container=checked",
                   "--filter", "event=health_status", "--format", "{{.Action}}", check=True).stdout.split("\n")
    assert [e for e in events if e] == ["health_status: healthy", "health_status: unhealthy"]
    assert inspect(berth, "checked")["State"]["Status"] == "running"
    berth("rm", "-f", "checked", check=True)


def test_frequent_probes_keep_the_full_monitor(berth):
    berth("run", "-d", "--name", "busy", "--network", "none", "--health-cmd", "true", "--health-interval", "1s",
          berth.image, "sleep", "300", check=True)
    wait_for(lambda: len(inspect(berth, "busy")["State"]["Health"]["Log"]) >= 2, what="two probes")
    assert not steady(berth, "busy")  # a probe each second: returning each time would cost more than it saves
    berth("rm", "-f", "busy", check=True)


def test_log_driver_none(berth):
    berth("run", "-d", "--name", "unlogged", "--network", "none", "--log-driver", "none", berth.image,
          "sh", "-c", "sleep 1; echo gone; exit 4", check=True)
    wait_steady(berth, "unlogged")  # none has a handoff: nothing to write
    wait_for(lambda: inspect(berth, "unlogged")["State"]["Status"] == "exited", what="the exit")
    assert inspect(berth, "unlogged")["State"]["ExitCode"] == 4


def test_rm_f_ends_a_steady_monitor_without_waiting_for_it(berth):
    """rm -f does not wake the steady state (its return costs a full interpreter's start): it
    kills it and the container, and frees what the container held itself."""
    for name, more in (("plain", []), ("always", ["--restart", "always"])):
        berth("run", "-d", "--name", name, *more, berth.image, "sleep", "300", check=True)
        wait_steady(berth, name)
    pids = {name: (monitor_pid(berth, name), inspect(berth, name)["State"]["Pid"]) for name in ("plain", "always")}
    ids = {name: inspect(berth, name)["Id"] for name in pids}
    assert berth("rm", "-f", "plain", "always", check=True).stdout.split() == ["plain", "always"]
    assert berth("ps", "-aq").stdout == ""
    gone = [f"/proc/{pid}" for pair in pids.values() for pid in pair]
    wait_for(lambda: not any(os.path.exists(path) for path in gone), what="the monitors and the containers gone")
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert not any(cid in mounts for cid in ids.values())
    events = berth("events", "--since", "1m", "--until", "0s", "--filter", "container=plain",
                   "--format", "{{.Action}}", check=True).stdout.split()
    assert events[-3:] == ["kill", "die", "destroy"]


def test_a_killed_steady_monitor_leaves_no_running_container(berth):
    berth("run", "-d", "--name", "orphan", "--network", "none", berth.image, "sleep", "300", check=True)
    wait_steady(berth, "orphan")
    process = inspect(berth, "orphan")["State"]["Pid"]
    os.kill(monitor_pid(berth, "orphan"), 9)
    state = wait_for(lambda: (s := inspect(berth, "orphan")["State"])["Status"] == "exited" and s, what="exited")
    assert state["ExitCode"] == 137
    wait_for(lambda: not os.path.exists(f"/proc/{process}"), what="the container's process gone")
    berth("start", "orphan", check=True)  # and it runs again, handing off again
    wait_steady(berth, "orphan")
    berth("rm", "-f", "orphan", check=True)
