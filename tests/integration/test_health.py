"""Health checks through the real CLI: the monitor runs the probe inside the
container (as exec does), State.Health in inspect, "(healthy)" in ps,
health_status events, `ps --filter health=`. Intervals are 100-200 ms: the
tests are short."""

from __future__ import annotations

import time

from harness import inspect, wait_for


def health(berth, ref: str) -> dict:
    return inspect(berth, ref)["State"].get("Health") or {}


def status_column(berth, name: str) -> str:
    rows = dict(line.split(" ", 1) for line in berth("ps", "-a", "--format", "{{.Names}} {{.Status}}",
                                                     check=True).stdout.splitlines())
    return rows[name]


def test_a_check_flips_to_unhealthy_and_back(berth):
    berth("run", "-d", "--name", "web", "--network", "none", "--health-cmd", "cat /tmp/ready",
          "--health-interval", "150ms", "--health-retries", "2", "--health-timeout", "5s", berth.image,
          "sleep", "300", check=True)
    info = inspect(berth, "web")
    assert info["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "cat /tmp/ready"], "Interval": 150_000_000,
                                             "Timeout": 5_000_000_000, "Retries": 2}
    berth("run", "-d", "--name", "later", "--network", "none", "--health-cmd", "true", "--health-interval", "1h",
          berth.image, "sleep", "300", check=True)
    assert health(berth, "later") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert status_column(berth, "later").endswith("(health: starting)")
    assert berth("ps", "-q", "--filter", "health=starting", check=True).stdout.split() == [
        inspect(berth, "later")["Id"][:12]]
    berth("rm", "-f", "later", check=True)
    wait_for(lambda: health(berth, "web")["Status"] == "unhealthy", what="unhealthy")
    state = health(berth, "web")
    assert state["FailingStreak"] >= 2
    last = state["Log"][-1]
    assert last["ExitCode"] == 1 and "No such file or directory" in last["Output"]
    assert set(last) == {"Start", "End", "ExitCode", "Output"}
    assert status_column(berth, "web").endswith("(unhealthy)")
    assert berth("ps", "-q", "--filter", "health=unhealthy", check=True).stdout.strip() == info["Id"][:12]
    assert berth("ps", "-q", "--filter", "health=healthy", check=True).stdout.strip() == ""
    # the probe runs inside the container: a file made there makes it pass
    berth("exec", "web", "sh", "-c", "echo ok > /tmp/ready", check=True)
    wait_for(lambda: health(berth, "web")["Status"] == "healthy", what="healthy again")
    state = health(berth, "web")
    assert state["FailingStreak"] == 0 and state["Log"][-1] | {"Start": 0, "End": 0} == {
        "Start": 0, "End": 0, "ExitCode": 0, "Output": "ok\n"}
    wait_for(lambda: len(health(berth, "web")["Log"]) == 5, what="the log's 5 entries")
    time.sleep(0.4)
    assert len(health(berth, "web")["Log"]) == 5  # the last 5 only
    assert status_column(berth, "web").endswith("(healthy)")
    assert berth("ps", "-q", "--filter", "health=healthy", check=True).stdout.strip() == info["Id"][:12]
    actions = berth("events", "--since", "1m", "--until", "0s", "--filter", "container=web",
                    "--format", "{{.Action}}", check=True).stdout.splitlines()
    changes = [a for a in actions if a.startswith("health_status")]
    assert changes == ["health_status: unhealthy", "health_status: healthy"]
    assert "exec_start: /bin/sh -c cat /tmp/ready" in actions
    bad = berth("ps", "--filter", "health=fine")
    assert bad.returncode != 0 and "Unrecognised filter value for health: fine" in bad.stderr
    berth("stop", "-t", "0", "web", check=True)


def test_the_image_healthcheck_applies_and_flags_override_it(berth, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM {berth.image}\nHEALTHCHECK --interval=100ms --retries=1 CMD [\"sh\", \"-c\", \"exit 1\"]\n")
    berth("build", "-q", "-t", "checked", str(tmp_path), check=True)
    berth("run", "-d", "--name", "img", "--network", "none", "checked", "sleep", "300", check=True)
    assert inspect(berth, "img")["Config"]["Healthcheck"]["Test"] == ["CMD", "sh", "-c", "exit 1"]
    wait_for(lambda: health(berth, "img").get("Status") == "unhealthy", what="the image's check")
    # --health-cmd replaces the test, the image's interval and retries stay (Docker's merge)
    berth("run", "-d", "--name", "mine", "--network", "none", "--health-cmd", "true", "checked", "sleep", "300",
          check=True)
    check = inspect(berth, "mine")["Config"]["Healthcheck"]
    assert check == {"Test": ["CMD-SHELL", "true"], "Interval": 100_000_000, "Retries": 1}
    wait_for(lambda: health(berth, "mine").get("Status") == "healthy", what="the flag's check")
    # --no-healthcheck: no probe, no State.Health, "none" to the filter
    berth("run", "-d", "--name", "off", "--network", "none", "--no-healthcheck", "checked", "sleep", "300",
          check=True)
    assert inspect(berth, "off")["Config"]["Healthcheck"]["Test"] == ["NONE"]  # (the image's Interval merged in)
    time.sleep(0.4)
    assert "Health" not in inspect(berth, "off")["State"]
    assert status_column(berth, "off").startswith("Up ") and "(" not in status_column(berth, "off")
    names = berth("ps", "--filter", "health=none", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["off"]
    berth("rm", "-f", "img", "mine", "off", check=True)


def test_a_probe_past_its_timeout_is_killed_and_start_period_forgives(berth):
    berth("run", "-d", "--name", "slow", "--network", "none", "--health-cmd", "sleep 5", "--health-interval",
          "100ms", "--health-timeout", "200ms", "--health-retries", "1", berth.image, "sleep", "300", check=True)
    wait_for(lambda: health(berth, "slow").get("Status") == "unhealthy", what="the timeout")
    last = health(berth, "slow")["Log"][-1]
    assert last["ExitCode"] == -1 and last["Output"] == "Health check exceeded timeout (200ms)"
    # within the start period, failures do not count: still starting
    berth("run", "-d", "--name", "patient", "--network", "none", "--health-cmd", "false", "--health-interval",
          "100ms", "--health-start-period", "30s", "--health-start-interval", "100ms", "--health-retries", "1",
          berth.image, "sleep", "300", check=True)
    wait_for(lambda: len(health(berth, "patient").get("Log") or []) >= 3, what="three probes")
    state = health(berth, "patient")
    assert state["Status"] == "starting" and state["FailingStreak"] == 0
    berth("rm", "-f", "slow", "patient", check=True)
    out = berth("ps", "-aq").stdout.strip()
    assert out == ""


def test_bad_health_flags_are_refused_with_dockers_messages(berth):
    cases = {
        ("--no-healthcheck", "--health-cmd", "true"): "--no-healthcheck conflicts with --health-* options",
        ("--health-interval", "-1s"): "--health-interval cannot be negative",
        ("--health-retries", "-2"): "--health-retries cannot be negative",
        ("--health-timeout", "10us"): "Timeout in Healthcheck cannot be less than 1ms",
        ("--health-interval", "soon"): 'invalid argument "soon" for "--health-interval" flag: '
                                       'time: invalid duration "soon"',
    }
    for flags, message in cases.items():
        out = berth("run", "-d", *flags, berth.image, "true")
        assert out.returncode == 125, out
        assert message in out.stderr
    assert berth("ps", "-aq").stdout.strip() == ""


def test_the_docker_cli_sees_health_and_restarts_through_the_engine_api(berth):
    """docker 28 against `berth system service`: Config.Healthcheck and RestartPolicy act."""
    from api_service import ApiService

    berth.image  # noqa: B018 (busybox:latest)
    api = ApiService(berth)
    try:
        assert api.docker("run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "true",
                          "--health-interval", "100ms", "busybox", "sleep", "60").returncode == 0
        wait_for(lambda: api.docker("inspect", "-f", "{{.State.Health.Status}}", "hc").stdout.strip() == "healthy",
                 what="healthy through the API")
        assert "(healthy)" in api.docker("ps", "--format", "{{.Status}}").stdout
        bad = api.docker("run", "-d", "--network", "none", "--health-timeout", "10us", "busybox", "true")
        assert bad.returncode != 0 and "Timeout in Healthcheck cannot be less than 1ms" in bad.stderr
        assert api.docker("run", "-d", "--name", "rc", "--network", "none", "--restart", "on-failure:2", "busybox",
                          "sh", "-c", "exit 1").returncode == 0
        wait_for(lambda: api.docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "rc").stdout.strip()
                 == "2 exited", what="two restarts through the API")
        api.docker("rm", "-f", "hc", "rc")
    finally:
        api.stop()
