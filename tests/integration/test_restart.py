"""Restart policies through the real CLI: the container's monitor restarts its
process with Docker's back-off, counts RestartCount, shows "Restarting (N)" in
ps, emits die/start; stop, kill and rm -f end it for good; `start --all
--filter restart-policy=...` brings back what Docker's daemon restarts at boot.
Back-offs stay at their first steps (0.1 s, 0.2 s ...): the tests are short."""

from __future__ import annotations

import json
import os
import signal
import time

from harness import BERTH, inspect, wait_for


def monitor_pid(berth, ref: str) -> int:
    """The monitor's PID, from the store (inspect hides it, as Docker has none)."""
    import sqlite3

    db = sqlite3.connect(berth.root / "berth.db")
    try:
        row = db.execute("SELECT state FROM containers WHERE id = ?", (inspect(berth, ref)["Id"],)).fetchone()
    finally:
        db.close()
    return int(json.loads(row[0]).get("MonitorPid") or 0)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_on_failure_retries_then_stays_exited(berth):
    berth("run", "-d", "--name", "flaky", "--network", "none", "--restart", "on-failure:2", berth.image,
          "sh", "-c", "echo ran; exit 1", check=True)
    wait_for(lambda: inspect(berth, "flaky")["State"]["Status"] == "exited", what="the last exit")
    info = inspect(berth, "flaky")
    assert info["RestartCount"] == 2
    assert info["State"]["ExitCode"] == 1 and not info["State"]["Restarting"]
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert berth("logs", "flaky", check=True).stdout == "ran\n" * 3
    time.sleep(0.5)  # no fourth run comes
    assert inspect(berth, "flaky")["RestartCount"] == 2
    events = berth("events", "--since", "1m", "--until", "0s", "--filter", "container=flaky",
                   "--format", "{{.Action}}", check=True).stdout.split()
    assert events == ["create", "start", "die", "start", "die", "start", "die"]
    # a success is no failure: on-failure does not restart it
    berth("run", "-d", "--name", "fine", "--network", "none", "--restart", "on-failure", berth.image,
          "true", check=True)
    wait_for(lambda: inspect(berth, "fine")["State"]["Status"] == "exited", what="the exit")
    time.sleep(0.3)
    assert inspect(berth, "fine")["RestartCount"] == 0


def test_always_survives_a_crash_and_stop_ends_it(berth):
    berth("run", "-d", "--name", "svc", "--restart", "always", berth.image, "sleep", "300", check=True)
    first = inspect(berth, "svc")
    address = first["NetworkSettings"]["IPAddress"]
    os.kill(first["State"]["Pid"], signal.SIGKILL)  # a crash, not a berth command
    wait_for(lambda: inspect(berth, "svc")["RestartCount"] == 1
             and inspect(berth, "svc")["State"]["Status"] == "running", what="the restart")
    again = inspect(berth, "svc")
    assert again["State"]["Pid"] != first["State"]["Pid"]
    # the network stays: same address, and the restarted process has it
    assert again["NetworkSettings"]["IPAddress"] == address
    out = berth("exec", "svc", "ip", "-4", "addr", "show", "eth0", check=True).stdout
    assert f"inet {address}/" in out
    assert berth("stop", "-t", "1", "svc", check=True).stdout.strip() == "svc"
    time.sleep(0.5)
    info = inspect(berth, "svc")
    assert info["State"]["Status"] == "exited" and info["RestartCount"] == 1
    # a start is a fresh start: RestartCount back to 0 (Docker's ResetRestartManager)
    berth("start", "svc", check=True)
    assert inspect(berth, "svc")["RestartCount"] == 0
    pid = monitor_pid(berth, "svc")
    berth("kill", "svc", check=True)
    wait_for(lambda: gone(pid), what="the monitor's exit")
    info = inspect(berth, "svc")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137


def test_restarting_shows_in_ps_and_rm_f_ends_it(berth):
    berth("run", "-d", "--name", "loop", "--network", "none", "--restart", "always", berth.image,
          "sh", "-c", "exit 3", check=True)
    status = wait_for(lambda: [line for line in berth("ps", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
                               if line.startswith("loop Restarting (3) ")], what="Restarting in ps")
    assert status[0].endswith(" ago")
    info = inspect(berth, "loop")
    if info["State"]["Status"] == "restarting":
        assert info["State"]["Running"] and info["State"]["Restarting"] and info["State"]["Pid"] == 0
    wait_for(lambda: inspect(berth, "loop")["RestartCount"] >= 4, what="a longer back-off")
    pid = monitor_pid(berth, "loop")
    assert pid and not gone(pid)
    started = time.monotonic()
    assert berth("rm", "-f", "loop", check=True).stdout.strip() == "loop"
    assert time.monotonic() - started < 5  # the back-off is cut short
    wait_for(lambda: gone(pid), what="the monitor's exit")
    assert berth("ps", "-aq").stdout.strip() == ""


def test_a_restarting_container_keeps_its_network_while_others_start(berth):
    """Between two processes (Pid 0) the monitor holds the network: another container's
    start, which releases what dead containers held, leaves it alone."""
    berth("run", "-d", "--name", "crashy", "--restart", "always", berth.image, "sh", "-c", "exit 1", check=True)
    address = inspect(berth, "crashy")["NetworkSettings"]["IPAddress"]
    assert address
    # the 5th restart waits 3.2 s: another container starts meanwhile
    wait_for(lambda: inspect(berth, "crashy")["RestartCount"] >= 5
             and inspect(berth, "crashy")["State"]["Status"] == "restarting", what="a long back-off")
    berth("run", "--rm", berth.image, "true", check=True)
    info = inspect(berth, "crashy")
    assert info["NetworkSettings"]["IPAddress"] == address
    berth("rm", "-f", "crashy", check=True)


def test_wait_returns_at_the_exit_a_restart_follows(berth):
    """Docker's wait: the next exit, even when the restart policy brings the container back."""
    berth("run", "-d", "--name", "again", "--network", "none", "--restart", "always", berth.image,
          "sh", "-c", "sleep 0.5; exit 7", check=True)
    out = berth("wait", "again", timeout=20, check=True)
    assert out.stdout.strip() == "7"
    assert inspect(berth, "again")["State"]["Status"] in ("restarting", "running")


def test_kill_with_another_signal_keeps_always(berth):
    """Docker: only the stop signal or SIGKILL cancels the restart; another signal that
    ends the process still restarts an always container, not an unless-stopped one."""
    for policy in ("always", "unless-stopped"):
        berth("run", "-d", "--name", policy, "--network", "none", "--restart", policy, berth.image,
              "sh", "-c", "trap 'exit 5' USR1; sleep 300 & wait", check=True)
        time.sleep(0.2)  # the trap is set
        berth("kill", "-s", "USR1", policy, check=True)
    wait_for(lambda: inspect(berth, "always")["RestartCount"] == 1, what="always's restart")
    wait_for(lambda: inspect(berth, "unless-stopped")["State"]["Status"] == "exited", what="unless-stopped's exit")
    assert inspect(berth, "unless-stopped")["RestartCount"] == 0


def test_start_all_brings_back_what_docker_restarts_at_boot(berth):
    net = ("--network", "none")
    berth("run", "-d", "--name", "always", *net, "--restart", "always", berth.image, "sleep", "300", check=True)
    berth("run", "-d", "--name", "unless", *net, "--restart", "unless-stopped", berth.image, "sleep", "300",
          check=True)
    berth("run", "-d", "--name", "stopped", *net, "--restart", "unless-stopped", berth.image, "sleep", "300",
          check=True)
    berth("run", "-d", "--name", "failing", *net, "--restart", "on-failure:5", berth.image, "sleep", "300",
          check=True)
    berth("run", "-d", "--name", "ok", *net, "--restart", "on-failure", berth.image, "true", check=True)
    berth("run", "-d", "--name", "plain", *net, berth.image, "sleep", "300", check=True)
    berth("create", "--name", "never", *net, "--restart", "always", berth.image, "sleep", "300", check=True)
    berth("stop", "-t", "0", "stopped", "always", check=True)
    # a killed monitor (as a reboot leaves them): its container is killed with it (137)
    for name in ("unless", "plain", "failing"):
        os.kill(monitor_pid(berth, name), signal.SIGKILL)
    wait_for(lambda: all(inspect(berth, n)["State"]["Status"] == "exited"
                         for n in ("unless", "plain", "failing", "ok")), what="every container exited")
    bad = berth("start", "--all", "--filter", "restart-policy=sometimes")
    assert bad.returncode == 125 and "invalid restart policy" in bad.stderr
    started = berth("start", "--all", "--filter", "restart-policy=always", "--filter",
                    "restart-policy=unless-stopped", "--filter", "restart-policy=on-failure", check=True)
    # always even when stopped by the user (Docker's daemon does); not: unless-stopped stopped by the
    # user, on-failure after a success, no policy, never started
    ids = {inspect(berth, n)["Id"] for n in ("always", "unless", "failing")}
    assert set(started.stdout.split()) == ids
    running = set(berth("ps", "--format", "{{.Names}}", check=True).stdout.split())
    assert running == {"always", "unless", "failing"}


def test_invalid_policies_are_refused_with_dockers_messages(berth):
    cases = {
        ("--restart", "always", "--rm"): "Conflicting options: --restart and --rm",
        ("--restart", "sometimes"): "invalid restart policy: unknown policy 'sometimes'",
        ("--restart", "always:2"): "maximum retry count can only be used with 'on-failure'",
        ("--restart", "on-failure:x"): "maximum retry count must be an integer",
    }
    for flags, message in cases.items():
        out = berth("run", *flags, berth.image, "true")
        assert out.returncode == 125, out
        assert message in out.stderr
    assert berth("ps", "-aq").stdout.strip() == ""  # nothing half-made


def test_the_unit_runs_start_all():
    from pathlib import Path

    unit = (Path(__file__).parents[2] / "contrib" / "systemd" / "berth-restart.service").read_text()
    line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = line.split("=", 1)[1].split()
    assert argv[1:4] == ["start", "--all", "--filter"]
    assert {a for a in argv if a.startswith("restart-policy=")} == {
        "restart-policy=always", "restart-policy=unless-stopped", "restart-policy=on-failure"}
    assert BERTH  # the same command the tests run
