"""Health checks, as Docker's: the image's HEALTHCHECK and the --health-* flags.

Config.Healthcheck is Docker's HealthConfig: Test (["NONE"], ["CMD", arg, ...]
or ["CMD-SHELL", command]), Interval, Timeout, StartPeriod, StartInterval
(nanoseconds, 0 or absent for the default) and Retries. The container's monitor
runs the probe inside the container as `exec` runs a command (`Checker`), and
keeps State.Health: Status (starting, healthy, unhealthy), FailingStreak and
Log, the last 5 results (Start, End, ExitCode, Output).

Docker's rules: the first probe comes one interval after the start (the start
interval while the container is starting within its start period); the next
one an interval after the previous one ended; exit 0 is healthy, anything else
a failure; a failure within the start period, before any success, does not
count; `Retries` failures in a row make it unhealthy; a probe that outlives
its timeout is killed (ExitCode -1). Each change of Status is a
``health_status: STATUS`` event.
"""

from __future__ import annotations

import os
import signal
import time

from berth.core.errors import InvalidArgument

NS = 1_000_000_000
DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0, "StartInterval": 5 * NS}
DEFAULT_RETRIES = 3
MAX_LOG = 5  # results kept in State.Health.Log
MAX_OUTPUT = 4096  # bytes of a probe's output kept
MINIMUM = 1_000_000  # 1 ms: the daemon's container.MinimumDuration
STATUSES = ("starting", "healthy", "unhealthy", "none")  # `ps --filter health=`

_FLAGS = (("health_interval", "--health-interval", "Interval"), ("health_timeout", "--health-timeout", "Timeout"),
          ("health_start_period", "--health-start-period", "StartPeriod"),
          ("health_start_interval", "--health-start-interval", "StartInterval"))


# -- the configuration ---------------------------------------------------------------


def given(kw: dict) -> bool:
    """Whether any health flag was given (the CLI imports nothing more otherwise)."""
    return bool(kw.get("no_healthcheck") or kw.get("health_cmd") or kw.get("health_retries")
                or any(kw.get(dest) for dest, _, _ in _FLAGS))


def from_flags(kw: dict) -> dict | None:
    """Config.Healthcheck from --health-* and --no-healthcheck, checked as Docker's CLI and
    daemon check them; None when none was given (the image's applies)."""
    from berth.core.containers.hostconfig import bad_value
    from berth.core.plumbing.units import parse_duration

    durations = {}
    for dest, flag, key in _FLAGS:
        if kw.get(dest):
            try:
                durations[key] = parse_duration(kw[dest])
            except ValueError as exc:
                raise bad_value(kw[dest], flag, str(exc)) from None
    retries = kw.get("health_retries") or 0
    command = kw.get("health_cmd") or ""
    have = bool(command or retries or any(durations.values()))
    if kw.get("no_healthcheck"):
        if have:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for _dest, flag, key in _FLAGS:
        if durations.get(key, 0) < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
    if retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    check = {"Test": ["CMD-SHELL", command]} if command else {}
    check.update((key, value) for key, value in durations.items() if value)
    if retries:
        check["Retries"] = retries
    return validate(check)


def validate(check: dict) -> dict:
    """A HealthConfig as Docker's daemon checks it (the Engine API's Config.Healthcheck too)."""
    test = check.get("Test")
    if test is not None and not (isinstance(test, list) and all(isinstance(word, str) for word in test)):
        raise InvalidArgument("json: cannot unmarshal into Go struct field HealthConfig.Test of type []string")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        value = check.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"json: cannot unmarshal into Go struct field HealthConfig.{key} of type int")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        if check.get(key) and check[key] < MINIMUM:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (check.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    return {key: value for key, value in check.items() if value not in (None, 0, [])}


def merge(user: dict | None, image: dict | None) -> dict | None:
    """Docker's merge: what the user left unset comes from the image's HEALTHCHECK."""
    if user is None:
        return dict(image) if image else None
    out = dict(user)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not out.get(key) and (image or {}).get(key):
            out[key] = image[key]
    return out


def probe_args(check: dict | None) -> list[str] | None:
    """The probe's command line, or None when the container has no health check."""
    test = list((check or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])] if len(test) > 1 else None
    return None  # Docker refuses an unknown type at create; an image may still carry one


def status_of(state: dict) -> str:
    """starting, healthy, unhealthy, or none (no health check)."""
    return (state.get("Health") or {}).get("Status") or "none"


# -- the probe, in the container's monitor ---------------------------------------------


class Checker:
    """The health monitor of one container: driven by its monitor's loop
    (`wait()` bounds the loop's sleep, `tick()` acts, `readable()` takes output)."""

    def __init__(self, monitor, check: dict, args: list[str]):
        self.monitor = monitor
        self.args = args
        self.interval = (check.get("Interval") or DEFAULTS["Interval"]) / NS
        self.timeout = (check.get("Timeout") or DEFAULTS["Timeout"]) / NS
        self.start_period = (check.get("StartPeriod") or DEFAULTS["StartPeriod"]) / NS
        self.start_interval = (check.get("StartInterval") or DEFAULTS["StartInterval"]) / NS
        self.retries = check.get("Retries") or DEFAULT_RETRIES
        self.health: dict = {}
        self.started = 0.0
        self.due: float | None = None
        self.probe: dict | None = None  # the running probe: pid, fd (its output), start, deadline, output
        self.unreaped: list[int] = []  # probes killed and not yet gone

    # -- driven by the monitor

    def begin(self, state: dict) -> None:
        """The container's process started: starting again, the log kept (Docker's initHealthMonitor)."""
        self.health = {"Status": "starting", "FailingStreak": 0, "Log": list((state.get("Health") or {}).get("Log")
                                                                               or [])}
        self.started = time.monotonic()
        self.due = self.started + self._next_interval()
        self._save()

    def idle(self, gap: float) -> bool:
        """No probe runs or waits to be reaped, and the next one is `gap` seconds away or more
        (the monitor may hand off to its steady state: see schedule)."""
        return (self.probe is None and not self.unreaped
                and (self.due is None or self.due - time.monotonic() >= gap))

    def schedule(self) -> dict:
        """What resume() needs in another process (time.monotonic is the system's)."""
        return {"started": self.started, "due": self.due}

    def resume(self, state: dict, started: float, due: float | None) -> None:
        """Go on in a new monitor process (berth.core.containers.steady) as this one would have."""
        self.health = dict(state.get("Health") or {"Status": "starting", "FailingStreak": 0, "Log": []})
        self.started, self.due = started, due

    def end(self) -> None:
        """The process exited: no more probes; one running is killed."""
        self.due = None
        if self.probe is not None:
            _kill(self.probe["pid"])
            self._close_probe()

    def wait(self) -> float | None:
        """Seconds until tick() has something to do (None: nothing planned)."""
        if self.probe is not None:
            return max(self.probe["deadline"] - time.monotonic(), 0)
        if self.due is not None:
            return max(self.due - time.monotonic(), 0)
        return None

    def tick(self) -> None:
        self._reap_killed()
        now = time.monotonic()
        probe = self.probe
        if probe is not None:
            try:
                done, status = os.waitpid(probe["pid"], os.WNOHANG)
            except ChildProcessError:
                done, status = probe["pid"], 255 << 8
            if done:
                probe["reaped"] = True
                code = os.waitstatus_to_exitcode(status)
                self._result(code if code >= 0 else 128 - code)
            elif now >= probe["deadline"]:
                _kill(probe["pid"])
                self._result(-1, f"Health check exceeded timeout ({_go_seconds(self.timeout)})")
        elif self.due is not None and now >= self.due:
            self._start_probe()

    def readable(self, fd: int) -> None:
        """Output of the running probe: the first MAX_OUTPUT bytes are kept."""
        if self.probe is None or self.probe["fd"] != fd:
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._keep(data)
        else:
            self._close_output()

    # -- the probe

    def _start_probe(self) -> None:
        import selectors

        from berth.core.plumbing.units import now_iso

        monitor = self.monitor
        service = monitor.service
        c = service.load(monitor.container.id) or monitor.container  # paused now? exec refuses it, as Docker's
        now = time.monotonic()
        probe = {"pid": 0, "fd": None, "start": now_iso(), "begun": now, "deadline": now + self.timeout,
                 "output": bytearray(), "reaped": True}
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        try:
            spec = service.exec_spec(c, self.args)  # as `exec` runs it (exec_create, exec_start events)
            spec.stdin, spec.stdout, spec.stderr = null, out_w, out_w
            probe["pid"] = service.exec_start(c, spec)
        except Exception as exc:  # Docker records the failure as the probe's result
            os.close(out_r)
            self.probe = probe
            self._result(-1, getattr(exc, "message", None) or str(exc))
            return
        finally:
            os.close(out_w)
            os.close(null)
        probe.update(fd=out_r, reaped=False)
        os.set_blocking(out_r, False)
        monitor.sel.register(out_r, selectors.EVENT_READ, ("probe", out_r))
        self.probe = probe

    def _keep(self, data: bytes) -> None:
        output = self.probe["output"]
        output += data[: MAX_OUTPUT + 1 - len(output)]

    def _close_output(self) -> None:
        fd = self.probe["fd"]
        if fd is not None:
            self.monitor.sel.unregister(fd)
            os.close(fd)
            self.probe["fd"] = None

    def _close_probe(self) -> None:
        probe = self.probe
        if probe["fd"] is not None:
            while True:  # what the probe wrote before it ended
                try:
                    data = os.read(probe["fd"], 65536)
                except OSError:
                    break
                if not data:
                    break
                self._keep(data)
            self._close_output()
        if not probe["reaped"]:
            self.unreaped.append(probe["pid"])  # killed: reaped once it is gone, never waited for here
            probe["reaped"] = True
        self._reap_killed()
        self.probe = None

    def _reap_killed(self) -> None:
        for pid in list(self.unreaped):
            try:
                done = os.waitpid(pid, os.WNOHANG)[0]
            except ChildProcessError:
                done = pid
            if done:
                self.unreaped.remove(pid)

    def _result(self, code: int, message: str | None = None) -> None:
        """Docker's handleProbeResult."""
        from berth.core.plumbing.units import now_iso

        probe = self.probe
        self._close_probe()
        output = probe["output"]
        if message is None:
            message = output[:MAX_OUTPUT].decode(errors="replace") + ("..." if len(output) > MAX_OUTPUT else "")
        c = self.monitor.container
        if probe["pid"]:
            self.monitor.engine.emit("container", "exec_die", c.id,
                                     c.attrs(execID=str(probe["pid"]), exitCode=str(code)))
        health = self.health
        old = health["Status"]
        health["Log"] = (health["Log"] + [{"Start": probe["start"], "End": now_iso(), "ExitCode": code,
                                           "Output": message}])[-MAX_LOG:]
        if code == 0:
            health["FailingStreak"] = 0
            health["Status"] = "healthy"
        elif not (old == "starting" and probe["begun"] - self.started < self.start_period):
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= self.retries:
                health["Status"] = "unhealthy"
        self._save()
        if health["Status"] != old:
            self.monitor.engine.emit("container", f"health_status: {health['Status']}", c.id, c.attrs())
        self.due = time.monotonic() + self._next_interval()

    def _next_interval(self) -> float:
        if time.monotonic() - self.started < self.start_period and self.health.get("Status") == "starting":
            return self.start_interval
        return self.interval

    def _save(self) -> None:
        self.monitor.service.update_state(self.monitor.container.id, Health=self.health)


def _kill(pid: int) -> None:
    """The probe and what it started: it is the leader of nothing, so the process alone (Docker kills the exec)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _go_seconds(seconds: float) -> str:
    """A Go time.Duration's String() for the timeouts people write (30s, 1m0s, 500ms)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes:
        hours, minutes = divmod(int(minutes), 60)
        return (f"{hours}h" if hours else "") + f"{minutes}m{secs:g}s"
    return f"{secs:g}s"
