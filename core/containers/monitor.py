"""The per-container monitor: one small process per running container.

`spawn()` (called by `berth start/run`) double-forks a monitor that
survives the command (`berth run` forks it earlier still: berth.core.containers.standby).
The monitor mounts the container's root filesystem,
writes /etc/hostname, /etc/hosts and /etc/resolv.conf into the run
directory, starts the container's PID 1 as its own child (runtime.start),
then owns its stdio: it feeds every line to the log driver and to the
clients attached on ``<runroot>/containers/<id>/attach.sock``. When PID 1
exits it records ExitCode and FinishedAt, emits ``die``, unmounts, removes
the cgroup, removes a ``--rm`` container, tells the attached clients the exit
code, and exits.

The command that spawned it learns the outcome through a pipe: one JSON
line, ``{"pid": N}`` once the command runs, or ``{"error": msg, "code": 127}``
when it could not be executed.

The attach protocol and its client: berth.core.containers.attach.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import select
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from berth.core.containers.stdio import Stdio, exit_code, set_window_size, short_path
from berth.core.networks.modes import joins_networks, network_joined

ATTACH_WAIT_SECONDS = 10  # a foreground client that never comes must not wedge the container


# -- the monitor process -------------------------------------------------------------


def main(make_engine, go_r: int, ready_w: int, network: str | None) -> int:  # pragma: no cover
    """Body of the monitor process (berth.core.containers.standby): load what a
    start needs, wait for the container, run it. `network`: see Standby."""
    try:  # before chdir: a relative BERTH_CONFIG or --root means the caller's directory
        engine, failure = make_engine(), None
    except BaseException as exc:  # a configuration the caller fails on as well
        engine, failure = None, exc
    os.chdir("/")
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):  # the caller's stdio pipes must not wait for this process
        os.dup2(null, fd)
    os.close(null)
    # Keep only our pipes: the caller's descriptors must not stay open here.
    ready = fcntl.fcntl(ready_w, fcntl.F_DUPFD_CLOEXEC, 3)
    go = fcntl.fcntl(go_r, fcntl.F_DUPFD_CLOEXEC, 3)
    for fd in _open_fds():
        if fd > 2 and fd not in (ready, go):
            try:
                os.close(fd)
            except OSError:
                pass
    _catch_signals()
    if failure is not None:
        message = failure.message if hasattr(failure, "message") else f"{type(failure).__name__}: {failure}"
        _send_ready(ready, {"error": f"monitor: {message}", "code": 125})
        return 1
    network_setup = None
    if network is not None:  # the network driver loads in its own process, forked before the store opens
        mode = engine.config.get("network.default") if network == "default" else network
        if network_joined(mode):
            network_setup = fork_network_setup(engine, (ready, go), lambda: engine.networks.preload([mode]))
    _preload(engine, store=network is not None)
    with os.fdopen(go, "rb") as f:
        raw = f.readline()
    told = json.loads(raw) if raw else {}
    if "container" not in told:  # cancelled, or the caller is gone: it returns once we (and the helper) exit
        if network_setup is not None:
            network_setup.cancel()
        return 0
    if network_setup is not None and not told["joins_networks"]:
        network_setup.cancel()
        network_setup = None
    container_id = told["container"]
    if network is None and told["joins_networks"]:  # (with `network`, the store is open: no fork now)
        network_setup = fork_network_setup(engine, (ready,), lambda: engine.networks.prepare(container_id))
    run_dir = engine.containers.run_dir(container_id)
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_fd = os.open(run_dir / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # line-buffered: the monitor ends with os._exit
    try:
        return Monitor(engine, container_id, ready, told["attach_wait"], network_setup).run()
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        _send_ready(ready, {"error": f"monitor: {type(exc).__name__}: {exc}", "code": 125})
        return 1


def _preload(engine, store: bool) -> None:
    """Import what starting a container needs while the caller creates it,
    and open the store when no fork is to come before the container's.
    Best effort: whatever fails here fails again, and is reported, where it is used."""
    try:
        from berth.core import plugins

        for module in ("shutil", "berth.core.runtime.process"):  # a --rm container's removal; the start
            importlib.import_module(module)
        engine.containers  # noqa: B018 - the container module and its service
        if store:
            engine.store  # noqa: B018 - its own connection (SQLite does not cross a fork)
        plugins.drivers("storage").get(engine.storage_driver_name)
        plugins.drivers("log").get(engine.config.get("logging.driver"))
    except Exception:
        pass


def fork_network_setup(engine, pipes: tuple[int, ...], prepare: Callable[[], None]):
    """A forked process that runs `prepare` (preloading network drivers)
    now, in parallel with the rest of a container's start, then attaches
    the container when sent {"container": ID, "pid": PID}. Fork it before
    the store is opened. `pipes`: the monitor's, which it closes (the
    caller reads them to their end: only the monitor may hold them). None
    without a network service (or a process)."""
    networks = engine.networks
    from berth.core.plumbing.forked import Forked

    def preload() -> None:
        null = os.open("/dev/null", os.O_RDWR)  # errors go back through the pipe
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        for fd in pipes:
            os.close(fd)
        prepare()

    def attach(arg: dict) -> None:
        networks.attach(engine.containers.load(arg["container"]), arg["pid"])

    try:
        return Forked(preload, attach)
    except OSError:  # no process to spare: the monitor attaches the container itself
        return None


def _catch_signals() -> None:
    # Caught, not ignored: an ignored signal stays ignored across execve, and
    # the container's PID 1 must start with default dispositions.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP,
                signal.SIGTTIN, signal.SIGTTOU, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, _ignore)


def _ignore(*_):
    pass


RESUME = "import sys; from berth.core.containers.monitor import resume; sys.exit(resume(*sys.argv[1:]))"


def resume(handoff: str, returned: str) -> int:  # pragma: no cover
    """Back from the steady state (berth.core.containers.steady), in a full
    interpreter: the container's process exited (the monitor restarts it as
    the policy says, else ends), or a health check's probe is due (the monitor
    runs it, then hands off again). `handoff`: what Monitor._hand_off gave the
    steady state for this; `returned`: what the steady state gives back."""
    from berth.core.runtime.cgroups import Cgroup
    from berth.core.runtime.spec import Mount

    _catch_signals()
    told, back = json.loads(handoff), json.loads(returned)
    from berth.core.config import Config

    engine_module, _, engine_class = told["engine"].partition(":")  # (the engine is above this layer)
    engine = getattr(importlib.import_module(engine_module), engine_class)(Config(told["config"]))
    monitor = Monitor(engine, told["container"], -1, False)
    if monitor.container is None:
        return 1
    monitor.listener = socket.socket(fileno=back["listener"])
    monitor.pid, monitor.exit_code = told["pid"], back["exit_code"]
    monitor.cgroup = Cgroup(*told["cgroup"]) if told["cgroup"] else None
    monitor.netns_fd = told["netns_fd"]
    monitor.reused = ([Mount(**m) for m in told["mounts"]], told["files"])
    monitor.rootfs = told["rootfs"]
    monitor.restarts.delay, monitor.restarts.since = told["restart_delay"], told["restart_since"]
    monitor.log = monitor._log_driver()  # (a restart reuses the first start's, and this is a new process)
    monitor.stdio.take(back)
    monitor._watch()
    for fd, hello, buffered in back["clients"]:
        monitor.stdio.adopt(fd, dict(zip(("stdin", "stdout", "stderr"), (flag == "1" for flag in hello))),
                    buffered.encode("latin-1"))
    monitor.health = _checker(monitor)
    if monitor.health is not None and told["health"]:
        monitor.health.resume(monitor.container.state, **told["health"])
    monitor._supervise(told["rootfs"], Path(told["run_dir"]), running=monitor.exit_code is None)
    return 0


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _send_ready(fd: int, message: dict) -> None:
    try:
        os.write(fd, json.dumps(message).encode() + b"\n")
        os.close(fd)
    except OSError:
        pass


# -- the monitor ---------------------------------------------------------------------


class Restarts:
    """Docker's restart manager: the policy, and the back-off between restarts
    (100 ms, doubled each time, at most a minute, back to 100 ms once a
    process ran 10 seconds)."""

    FIRST, MAX, RESET_AFTER = 0.1, 60.0, 10.0

    def __init__(self, policy: dict | None):
        self.set_policy(policy)
        self.delay = 0.0
        self.since = time.monotonic()

    def set_policy(self, policy: dict | None) -> None:
        policy = policy or {}
        name = policy.get("Name") or "no"  # "" in records made before Docker 25's "no"
        self.policy = "" if name == "no" else name
        self.max_retries = int(policy.get("MaximumRetryCount") or 0)

    def started(self) -> None:
        self.since = time.monotonic()

    def next_delay(self, code: int, state: dict) -> float | None:
        """Seconds to wait before the restart, or None when the container stays exited.
        `state`: its stored State (kill/stop's ExitOnNext, ManuallyStopped; RestartCount)."""
        if time.monotonic() - self.since >= self.RESET_AFTER:
            self.delay = 0.0
        self.delay = min(self.delay * 2 if self.delay else self.FIRST, self.MAX)
        if state.get("ExitOnNext"):
            return None
        if self.policy == "always":
            restart = True
        elif self.policy == "unless-stopped":
            restart = not state.get("ManuallyStopped")
        elif self.policy == "on-failure":
            count = int(state.get("RestartCount") or 0)
            restart = code != 0 and (not self.max_retries or count < self.max_retries)
        else:
            restart = False
        return self.delay if restart else None


class Monitor:
    """Runs one container and stays its parent until it exits."""

    def __init__(self, engine, container_id: str, ready_w: int, attach_wait: bool, network_setup=None):
        self.engine = engine
        self.network_setup = network_setup  # a Forked that attaches the container, or None
        self.service = engine.containers
        self.container = self.service.load(container_id)
        self.ready_w = ready_w
        self.pumping = not attach_wait
        self.attach_deadline = time.monotonic() + ATTACH_WAIT_SECONDS
        self.sel = selectors.DefaultSelector()
        self.stdio = Stdio(self._watch_fd, self._unwatch_fd, self._write_line, json.loads,
                           bool(self.container and self.container.config.get("StdinOnce")))
        self.stdio.on_hello = lambda: None if self.pumping else self._pump_outputs()
        self.log = None
        self.exit_code: int | None = None
        self.restarts = Restarts(self.container.host_config.get("RestartPolicy") if self.container else None)
        self.reused: tuple | None = None  # (mounts, files) of the first start, for the restarts
        self.netns_fd: int | None = None  # the network namespace kept across restarts
        self.error = ""  # why a restart failed
        self.health = None  # a health.Checker when the container has a health check
        self.steady = None  # False: the hand-off to the steady state was tried (or is not wanted)
        self.rootfs = None
        try:  # see config/berth.toml's [monitor]
            self.probe_gap = float(engine.config.get("monitor.steady_probe_gap"))
        except (KeyError, TypeError, ValueError):
            self.probe_gap = 10.0

    # -- setup ---------------------------------------------------------------------

    def run(self) -> int:
        c = self.container
        if c is None:
            self._cancel_network_setup()
            _send_ready(self.ready_w, {"error": "No such container", "code": 125})
            return 1
        run_dir = self.service.run_dir(c.id)
        self.listener = self._listen(run_dir / "attach.sock")
        storage = self.service.storage_for(c)
        failure = None
        # The start and its record are one step under the container's lock, which
        # rm takes too: a container removed meanwhile is never started, and one
        # started is listed as running before anyone else looks (issue #11).
        with self.engine.lock(f"container-{c.id}"):
            current = self.service.load(c.id)
            if current is None or current.running:
                if current is None:
                    self.engine.forget_lock(f"container-{c.id}")
                self._cancel_network_setup()
                _send_ready(self.ready_w, {"pid": current.pid} if current is not None and current.pid else
                            {"error": f"No such container: {c.id}", "code": 125})
                return 1
            try:
                rootfs = self.rootfs = storage.mount(c.id)
                started, child_fds = self._start(rootfs, run_dir)
            except BaseException as exc:
                failure = exc
            else:
                self.health = _checker(self)
                self._running(started, child_fds, RestartCount=0, ManuallyStopped=False, ExitOnNext=False)
        if failure is not None:
            self._start_failed(failure)  # outside the lock: a --rm container's removal takes it
            return 0
        self._announce_start()
        _send_ready(self.ready_w, {"pid": started.pid})
        self._watch()
        self._supervise(rootfs, run_dir)
        return 0

    def _supervise(self, rootfs, run_dir, running: bool = True) -> None:
        """The process runs (or, `running` False, has exited): follow it, restart it as its policy says, finish."""
        while True:
            if running:
                self.loop()
                if self.health is not None:
                    self.health.end()
            running = True
            outcome = self._restart(rootfs, run_dir)
            if outcome is not True:
                break
        self.finish(die=outcome is None)

    def _running(self, started, child_fds, **state) -> None:
        """The container's process runs: record it, say so."""
        c = self.container
        for fd in child_fds:
            os.close(fd)
        self.pid = started.pid
        self.cgroup = started.cgroup
        self.exit_code = None
        self.restarts.started()
        self.steady = None  # each process may hand off
        stored = self.service.update_state(
            c.id, Status="running", Running=True, Paused=False, Restarting=False, Pid=started.pid,
            PidStart=started.start_time, MonitorPid=os.getpid(), MonitorStart=_self_start(), ExitCode=0, Error="",
            StartedAt=_now(), FinishedAt="0001-01-01T00:00:00Z", OOMKilled=False, **state,
        )
        if self.health is not None:
            self.health.begin(stored or {})

    def _announce_start(self) -> None:
        c = self.container
        self.engine.emit("container", "start", c.id, c.attrs())
        self.container = self.service.load(c.id) or c
        self.engine.hook("container_post_start", container=self.container)

    # -- the restart policy --------------------------------------------------------------

    def _restart(self, rootfs, run_dir) -> bool | None:
        """The process exited: restart it if the policy says so (Docker's back-off).
        None: no restart (finish emits die); False: a restart was cancelled during
        its back-off (die was emitted); True: the process runs again."""
        c = self.container
        code = self.exit_code if self.exit_code is not None else 255
        if not self.restarts.policy:
            return None
        with self.engine.lock(f"container-{c.id}"):  # kill/stop mark the state under this lock
            current = self.service.load(c.id)
            if current is not None:  # `update --restart` may have changed it
                self.restarts.set_policy(current.host_config.get("RestartPolicy"))
            delay = self.restarts.next_delay(code, current.state) if current else None
            if delay is None:
                return None
            self._end_process(code)
            count = int(current.state.get("RestartCount") or 0) + 1
            self.service.update_state(
                c.id, Status="restarting", Running=True, Restarting=True, Paused=False, Pid=0, PidStart=None,
                ExitCode=code, FinishedAt=_now(), RestartCount=count)
        self._remove_cgroup()
        self.engine.emit("container", "die", c.id, c.attrs(exitCode=str(code)))
        deadline = time.monotonic() + delay
        while True:  # the back-off; kill/stop wake us with SIGUSR1
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.wake_r], [], [], left)
            self._drain_wake()
            if self._cancelled():
                return False
        with self.engine.lock(f"container-{c.id}"):
            if self._cancelled():
                return False
            try:
                started, child_fds = self._start(rootfs, run_dir)
            except BaseException as exc:  # Docker leaves it exited, with the reason
                print(f"restart: {exc}", file=sys.stderr)
                self.error = getattr(exc, "message", None) or str(exc)
                return False
            self._running(started, child_fds)
        self._announce_start()
        return True

    def _cancelled(self) -> bool:
        """stop, kill or rm -f came during the back-off."""
        current = self.service.load(self.container.id)
        return current is None or bool(current.state.get("ExitOnNext"))

    def _remove_cgroup(self) -> None:
        if self.cgroup is not None:
            try:
                self.cgroup.remove()
            except OSError:
                pass

    def _listen(self, path) -> socket.socket:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        short, dir_fd = short_path(str(path))
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            old = os.umask(0o177)
            try:
                sock.bind(short)
            finally:
                os.umask(old)
            sock.listen(16)
        finally:
            os.close(dir_fd)
        sock.setblocking(False)
        return sock

    def _log_driver(self):
        from berth.core import plugins

        cfg = self.container.host_config.get("LogConfig") or {}
        registry = plugins.drivers("log")
        if not registry.names():
            return None  # no logging plugin installed
        cls = registry.supported(cfg.get("Type") or "json-file")
        log_dir = self.service.log_dir(self.container.id)
        log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(self.container.id, log_dir, cfg.get("Config") or {})

    def _start(self, rootfs, run_dir):
        """Stdio, files, mounts, then runtime.start. Returns (Started, fds to close)."""
        from berth.core.runtime import process
        from berth.core.runtime.cgroups import Limits
        from berth.core.runtime.spec import ContainerSpec

        c = self.container
        cfg, hc = c.config, c.host_config
        restarting = self.reused is not None
        if not restarting:
            self.log = self._log_driver()
            self.reused = (self.engine.volumes.mounts_for(c, rootfs), write_etc_files(self.engine, c, run_dir))
        mounts, files = self.reused
        stdio = self.stdio
        stdio.partial = {"stdout": b"", "stderr": b""}
        child_fds = []
        if cfg.get("Tty"):
            master, slave = os.openpty()
            os.set_blocking(master, False)
            rows, cols = hc.get("ConsoleSize") or (0, 0)  # the caller's terminal, else 24x80
            set_window_size(master, rows or 24, cols or 80)
            stdio.master = master
            stdio.outputs[master] = "stdout"
            stdin = stdout = stderr = slave
            child_fds = [slave]
        else:
            if cfg.get("OpenStdin"):
                stdin, stdio.stdin_w = os.pipe2(os.O_CLOEXEC)
                child_fds.append(stdin)
            else:
                stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
                child_fds.append(stdin)
            out_r, stdout = os.pipe2(os.O_CLOEXEC)
            err_r, stderr = os.pipe2(os.O_CLOEXEC)
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
            stdio.outputs[out_r] = "stdout"
            stdio.outputs[err_r] = "stderr"
            child_fds += [stdout, stderr]
        netns = f"/proc/self/fd/{self.netns_fd}" if self.netns_fd is not None else _netns(self.service, c)
        networks = self.engine.networks

        def before_exec(pid: int) -> None:
            if restarting:
                return  # the network namespace is the one attached at the first start
            if self.restarts.policy and netns is None:  # it outlives the process, for the restarts
                self.netns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            if self.network_setup is not None:
                setup, self.network_setup = self.network_setup, None
                setup.send({"container": c.id, "pid": pid})
            elif joins_networks(c):
                networks.attach(c, pid)

        hostname = cfg.get("Hostname") or c.id[:12]
        own_env = [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if cfg.get("Tty") else [])  # as Docker's
        more, more_limits = host_spec(self.service, c)
        spec = ContainerSpec(
            args=c.command, env=own_env + _link_env(networks, c) + list(cfg.get("Env") or []),
            cwd=cfg.get("WorkingDir") or "/",
            user=cfg.get("User") or "", tty=bool(cfg.get("Tty")), stdin=stdin, stdout=stdout, stderr=stderr,
            rootfs=rootfs, hostname=hostname, readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
            mounts=mounts, files=files, netns=netns, shm_size=hc.get("ShmSize") or 64 * 1024 * 1024,
            limits=Limits(**resource_limits(hc), **more_limits),
            cgroup_parent="berth", cgroup_name=c.id, **more,
        )
        try:
            return process.start(spec, before_exec=before_exec), child_fds
        except BaseException:
            for fd in child_fds:
                os.close(fd)
            raise

    def _cancel_network_setup(self) -> None:
        if self.network_setup is not None:
            self.network_setup.cancel()
            self.network_setup = None

    def _start_failed(self, exc: BaseException) -> None:
        """The command could not run: undo everything, keep the container (created), report."""
        from berth.core.errors import BerthError

        c = self.container
        self._cancel_network_setup()
        code = getattr(exc, "exit_code", 125) if isinstance(exc, BerthError) else 125
        message = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, BerthError):
            import traceback

            traceback.print_exc()
        self.service._release_resources(c)
        if self.log is not None:
            self.log.close()
        self.service.update_state(c.id, ExitCode=code, Error=message)
        if c.host_config.get("AutoRemove"):
            try:
                self.service.remove(c.id, force=True)
            except BerthError:
                pass
        _send_ready(self.ready_w, {"error": message, "code": code})

    # -- the loop ---------------------------------------------------------------------

    def _watch(self) -> None:
        """Signals (SIGCHLD, kill's SIGUSR1) and attach clients wake the loop."""
        self.wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))

    def _drain_wake(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def loop(self) -> None:
        """Until the process has exited and its output is drained."""
        if self.pumping:
            self._pump_outputs()
        drain_deadline = None
        self._reap()
        while True:
            if self._can_hand_off():
                self._hand_off()  # returns only when it could not
            if self.exit_code is not None and self.pumping:
                if not self.stdio.outputs:
                    break
                drain_deadline = drain_deadline or time.monotonic() + 2
                if time.monotonic() > drain_deadline:
                    break
            timeout = None
            if not self.pumping:
                timeout = max(self.attach_deadline - time.monotonic(), 0)
            elif drain_deadline:
                timeout = 0.1
            if self.health is not None and (wait := self.health.wait()) is not None:
                timeout = wait if timeout is None else min(timeout, wait)
            for key, _ in self.sel.select(timeout):
                kind, fd = key.data
                if kind == "wake":
                    self._drain_wake()
                    self._reap()
                elif kind == "listen":
                    self.stdio.accept(self.listener)
                elif kind == "client":
                    self.stdio.client_readable(fd)
                elif kind == "output":
                    self.stdio.output_readable(fd)
                elif kind == "probe":
                    self.health.readable(fd)
            if self.health is not None:
                if self.exit_code is None:
                    self.health.tick()
                else:
                    self.health.end()
            if not self.pumping and time.monotonic() >= self.attach_deadline:
                self._pump_outputs()

    # -- the steady state ----------------------------------------------------------

    def _can_hand_off(self) -> bool:
        """Nothing but the output and the attach socket is left to look after (steady.py)."""
        return (self.pumping and self.exit_code is None and not self.stdio.clients and self.network_setup is None
                and self.steady is not False and (self.health is None or self.health.idle(self.probe_gap)))

    def _hand_off(self) -> None:
        """Re-execute into berth.core.containers.steady, a small interpreter, so that a
        running container costs little memory; it comes back (resume) when the process
        exits or a health check's probe is due."""
        self.steady = False  # one attempt
        try:
            log = {} if self.log is None else self.log.handoff()
        except Exception as exc:
            print(f"steady state: {exc}", file=sys.stderr)
            return
        if log is None:
            return
        from berth.core.containers import stdio as stdio_module
        from berth.core.containers import steady

        c = self.container
        cgroup = self.cgroup
        mounts, files = self.reused
        resume_told = json.dumps({
            "engine": f"{type(self.engine).__module__}:{type(self.engine).__qualname__}",
            "config": self.engine.config.data, "container": c.id, "pid": self.pid,
            "cgroup": [cgroup.parent, cgroup.name] if cgroup is not None else None,
            "rootfs": str(self.rootfs), "run_dir": str(self.service.run_dir(c.id)), "netns_fd": self.netns_fd,
            "mounts": [vars(m) for m in mounts], "files": files,
            "restart_delay": self.restarts.delay, "restart_since": self.restarts.since,
            "health": self.health.schedule() if self.health is not None else None,
        }, default=str)
        stdio = self.stdio
        told = {
            "pid": self.pid, "stdin_once": stdio.stdin_once, **stdio.handed(),
            "listener": self.listener.fileno(), "log": log, "stdio": stdio_module.__file__,
            "probe_due": self.health.due if self.health is not None else None,
            "resume": [sys.executable, "-c", RESUME, resume_told],
        }
        keep = [self.listener.fileno(), *stdio.outputs, stdio.master, stdio.stdin_w, log.get("fd"), self.netns_fd]
        for fd in keep:
            if fd is not None:
                os.set_inheritable(fd, True)
        sys.stderr.flush()
        try:
            os.execv(sys.executable, steady.command(sys.executable, told))
        except OSError as exc:  # go on as the full monitor, the log written through the writer it was given
            for fd in keep:
                if fd is not None:
                    os.set_inheritable(fd, False)
            print(f"steady state: {exc}", file=sys.stderr)

    def _reap(self) -> None:
        if self.exit_code is None:
            self.exit_code = exit_code(self.pid)

    def _pump_outputs(self) -> None:
        self.pumping = True
        for fd in self.stdio.outputs:
            self._watch_fd(fd, "output")

    def _watch_fd(self, fd: int, kind: str) -> None:
        self.sel.register(fd, selectors.EVENT_READ, (kind, fd))

    def _unwatch_fd(self, fd: int) -> None:
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass  # (an output before pumping began)

    def _write_line(self, stream: str, line: bytes) -> None:
        if self.log is None:
            return
        from datetime import datetime, timezone

        from berth.core.drivers import LogEntry

        try:
            self.log.write(LogEntry(stream, line, datetime.now(timezone.utc)))
        except Exception as exc:  # a full disk must not kill the container
            print(f"log driver: {exc}", file=sys.stderr)

    # -- the end --------------------------------------------------------------------

    def _end_process(self, code: int) -> None:
        """Between a process and its restart."""
        self.stdio.close()
        self.stdio.tell_clients(code)

    def finish(self, die: bool = True) -> None:
        from berth.core.errors import BerthError

        c = self.container
        self.stdio.close()
        if self.log is not None:
            try:
                self.log.close()
            except Exception:
                pass
        oom = False
        if self.cgroup is not None and die:
            try:
                oom = self.cgroup.memory_oom_kills() > 0
            except OSError:
                pass
        code = self.exit_code if self.exit_code is not None else 255
        self.service.release(c, exit_code=code, oom=oom, die=die, error=self.error)
        if self.netns_fd is not None:
            os.close(self.netns_fd)
        if c.host_config.get("AutoRemove"):
            try:
                self.service.remove(c.id, force=True)
            except BerthError as exc:
                print(f"auto-remove: {exc}", file=sys.stderr)
        self.listener.close()
        self.stdio.tell_clients(code)


def _checker(monitor):
    """The container's health monitor, or None without a health check (nothing more is imported)."""
    check = monitor.container.config.get("Healthcheck")
    if not check:
        return None
    from berth.core.containers import health

    args = health.probe_args(check)
    return health.Checker(monitor, check, args) if args else None


def _self_start() -> int:
    from berth.core.runtime.proc import start_time

    return start_time(os.getpid())


def _now() -> str:
    from berth.core.plumbing.units import now_iso

    return now_iso()


def _link_env(networks, container) -> list[str]:
    """--link variables (raises for a missing or stopped linked
    container); the container's own Env wins over them, as in Docker."""
    own = {e.split("=", 1)[0] for e in container.config.get("Env") or []}
    return [e for e in networks.link_env(container) if e.split("=", 1)[0] not in own]


def _netns(service, container) -> str | None:
    """The runtime's netns argument for the container's network mode."""
    # "none" and every network: a new namespace (the network service wires it)
    return _namespace(service, container.network_mode, "net", "network")


def _listed(paths, default):
    """HostConfig.MaskedPaths/ReadonlyPaths: None keeps Docker's defaults, a list (even empty) replaces them."""
    return default if paths is None else tuple(paths)


def _namespace(service, mode: str, kind: str, what: str) -> str | None:
    """The runtime's argument for a namespace mode: None (a new one), "host",
    or the /proc path of a running container's namespace."""
    if mode == "host":
        return "host"
    if mode.startswith("container:"):
        from berth.core.errors import FailedPrecondition

        other = service.get(mode.split(":", 1)[1])
        if not other.running:
            raise FailedPrecondition(f"cannot join {what} of a non running container: {other.id}")
        return f"/proc/{other.pid}/ns/{kind}"
    return None


def _shared_shm(service, container) -> str | None:
    """/dev/shm of a shared IPC namespace, as Docker's: the host's for --ipc
    host, none for --ipc none; for --ipc shareable a tmpfs mounted in the run directory (so that
    others can bind it; unmounted when the container stops); the donor's for
    --ipc container:NAME, which must be shareable or on the host's IPC namespace."""
    from berth.core.runtime import syscalls as sc

    hc = container.host_config
    mode = hc.get("IpcMode") or ""
    if mode == "host":
        return "/dev/shm"
    if mode == "none":
        return ""  # no /dev/shm at all
    if mode.startswith("container:"):
        other = service.get(mode.split(":", 1)[1])
        if (other.host_config.get("IpcMode") or "") == "host":  # a donor on the host's IPC: its /dev/shm, as Docker's
            return "/dev/shm"
        shm = service.run_dir(other.id) / "shm"
        if not os.path.ismount(shm):
            from berth.core.errors import InvalidArgument

            raise InvalidArgument(f"container {other.id}: non-shareable IPC (hint: use IpcMode:shareable for the "
                                  "donor container)")
        return str(shm)
    if mode == "shareable":
        shm = service.run_dir(container.id) / "shm"
        shm.mkdir(mode=0o755, exist_ok=True)
        if not os.path.ismount(shm):
            sc.mount("shm", str(shm), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                     f"mode=1777,size={hc.get('ShmSize') or 64 * 1024 * 1024}")
        return str(shm)
    return None


def resource_limits(hc: dict) -> dict:
    """The Limits arguments of HostConfig's memory, swap, CPU and pids fields (a start's, an update's)."""
    return {"memory": hc.get("Memory") or None, "memory_swap": hc.get("MemorySwap") or None,
            "cpus": (hc.get("NanoCpus") or 0) / 1e9 or None, "pids_limit": hc.get("PidsLimit")}


def host_spec(service, container) -> tuple[dict, dict]:
    """ContainerSpec and Limits arguments of HostConfig's namespace, device,
    security, capability, rlimit and cgroup settings (berth.core.containers.hostconfig)."""
    from berth.core.containers.hostconfig import process_settings, security_settings
    from berth.core.runtime import devices
    from berth.core.runtime.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

    hc = container.host_config
    security = security_settings(hc.get("SecurityOpt"))
    privileged = bool(hc.get("Privileged"))
    nodes, rules = [], []
    for mapping in hc.get("Devices") or ():
        found = devices.host_device(mapping["PathOnHost"], mapping["PathInContainer"],
                                    mapping.get("CgroupPermissions") or "rwm")
        nodes += found
        rules += [d.rule for d in found]
    if privileged:
        have = {d.path for d in nodes}
        nodes = [d for d in devices.host_devices() if d.path not in have] + nodes
    unconfined_paths = privileged or security["systempaths_unconfined"]
    init = None
    if hc.get("Init"):
        from berth.core.runtime.init import find

        init = find()
    spec = {
        "pidns": _namespace(service, hc.get("PidMode") or "", "pid", "PID"),
        "ipcns": _namespace(service, hc.get("IpcMode") or "", "ipc", "IPC"),
        "shm_source": _shared_shm(service, container),
        "utsns": "host" if hc.get("UTSMode") == "host" else None,
        "cgroupns": "host" if hc.get("CgroupnsMode") == "host" else None,
        "privileged": privileged, "devices": nodes, "sysctls": dict(hc.get("Sysctls") or {}),
        "oom_score_adj": hc.get("OomScoreAdj") or None, "init": init,
        "writable_cgroups": security["writable_cgroups"],
        "masked_paths": () if unconfined_paths else _listed(hc.get("MaskedPaths"), DEFAULT_MASKED_PATHS),
        "readonly_paths": () if unconfined_paths else _listed(hc.get("ReadonlyPaths"), DEFAULT_READONLY_PATHS),
        **process_settings(hc),
    }
    limits = {"cpu_shares": hc.get("CpuShares") or None, "cpuset_cpus": hc.get("CpusetCpus") or None,
              "memory_reservation": hc.get("MemoryReservation") or None,
              "oom_kill_disable": bool(hc.get("OomKillDisable")), "device_rules": tuple(rules),
              "all_devices": privileged}
    for rule in hc.get("DeviceCgroupRules") or ():
        limits["device_rules"] += (rule,)
    return spec, limits


# -- /etc files ----------------------------------------------------------------------

_HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


def write_etc_files(engine, container, run_dir) -> dict[str, str]:
    """hostname, hosts and resolv.conf in the run directory; container path -> host file.

    `engine.networks.hosts_entries(container)` lines are added
    to /etc/hosts and `engine.networks.resolv_conf(container)` (text) is the
    resolv.conf, when a network service exists and the mode is not host/none.
    """
    from berth.core.networks.network import host_resolv_text, resolv_text
    from berth.core.plumbing import atomic

    mode = container.network_mode
    if mode.startswith("container:"):  # the donor's own files, as Docker's: what is written to them reaches both
        shared = donor_etc_files(engine, mode.split(":", 1)[1])
        if shared:
            return shared
    networks = engine.networks
    hc = container.host_config
    extra = "".join(_extra_host_line(engine, entry) for entry in hc.get("ExtraHosts") or ())
    dns_flags = hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions")
    hostname = container.config.get("Hostname") or container.id[:12]
    if mode == "host":
        hosts = (_read_host("/etc/hosts") or _HOSTS) + extra
        resolv = resolv_text(_read_host("/etc/resolv.conf"), hc, keep_loopback=True)
    else:
        hosts = _HOSTS + extra
        if mode != "none":
            hosts += "".join(line.rstrip("\n") + "\n" for line in networks.hosts_entries(container))
            resolv = networks.resolv_conf(container)
        elif dns_flags:
            resolv = resolv_text(host_resolv_text(), hc)
        else:
            resolv = "# berth: --network none, no name servers\n"
    files = {"hostname": hostname + "\n", "hosts": hosts, "resolv.conf": resolv}
    out = {}
    for name, text in files.items():
        path = run_dir / name
        atomic.write_text(path, text, 0o644)
        out[f"/etc/{name}"] = str(path)
    return out


def donor_etc_files(engine, donor: str) -> dict[str, str] | None:
    """The hostname, hosts and resolv.conf of the container `donor` (a --network container:DONOR),
    container path -> host file; None when it has none (not started yet)."""
    from berth.core.errors import BerthError

    try:
        run_dir = engine.containers.run_dir(engine.containers.get(donor).id)
    except BerthError:  # gone: the joiner gets files of its own
        return None
    files = {f"/etc/{name}": str(run_dir / name) for name in ("hostname", "hosts", "resolv.conf")}
    return files if all(os.path.exists(path) for path in files.values()) else None


def _extra_host_line(engine, entry: str) -> str:
    """--add-host NAME:IP as a hosts line; host-gateway is the default network's gateway (as Docker's)."""
    name, _, address = entry.partition(":")
    if address == "host-gateway":
        address = str(engine.config.get("network.gateway"))
    return f"{address}\t{name}\n"


def _read_host(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
