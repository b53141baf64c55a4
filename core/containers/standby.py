"""A container's monitor, forked before the container exists.

`berth run` forks it first thing, before it has even read its
configuration, so the monitor loads the runtime and the drivers (and the
network driver, in a helper of its own) while the command creates the
container. `start()` then names the container and waits for its PID.
Without a `start()` (`cancel()`, or the caller dying) the monitor exits.

This module is light on purpose: it is imported before the fork, the
monitor's own code (berth.core.containers.monitor) after it.

Protocol: the caller writes one JSON line on the go pipe,
``{"container": ID, "attach_wait": bool, "joins_networks": bool}`` or
``{"cancel": true}`` (EOF counts as a cancel too); the monitor answers on
the ready pipe, ``{"pid": N}`` once the command runs or ``{"error": msg,
"code": 127}``, and its end of the pipe closes when it runs the container
or exits.
"""

from __future__ import annotations

import json
import os
import sys

from berth.core.networks.modes import joins_networks


class Standby:
    def __init__(self, make_engine, network: str | None = None):
        """`make_engine()` builds the monitor's Engine (in the monitor).
        `network`: the network the container will join ("default": the
        configured one), to load its driver now; None: the monitor does
        that once it knows the container."""
        go_r, self._go_w = os.pipe2(os.O_CLOEXEC)
        self._ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            child = os.fork()
        except OSError:
            for fd in (go_r, self._go_w, self._ready_r, ready_w):
                os.close(fd)
            raise
        if child == 0:  # pragma: no cover - runs in the forked processes
            code = 0
            try:
                os.close(self._go_w)
                os.close(self._ready_r)
                os.setsid()
                if os.fork() == 0:  # the monitor: not our child, it outlives us
                    from berth.core.containers import monitor

                    code = monitor.main(make_engine, go_r, ready_w, network)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(ready_w)
        os.waitpid(child, 0)

    def start(self, engine, container, *, attach_wait: bool = False) -> int:
        """Run `container` in this monitor; its host PID once its command runs.

        Raises the runtime's errors (StartError 125, CommandNotFound 127,
        CommandNotExecutable 126) when the command could not be started.
        """
        from berth.core.runtime.errors import CommandNotExecutable, CommandNotFound, StartError

        self._tell({"container": container.id, "attach_wait": attach_wait,
                    "joins_networks": joins_networks(container)})
        raw = self._finish().strip()
        try:
            message = json.loads(raw.splitlines()[0]) if raw else {}
        except ValueError:
            message = {}
        if "pid" in message:
            return int(message["pid"])
        if "error" in message:
            cls = {127: CommandNotFound, 126: CommandNotExecutable}.get(message.get("code"), StartError)
            raise cls(message["error"])
        log = engine.containers.run_dir(container.id) / "monitor.log"
        detail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        raise StartError("the container's monitor process died while starting it"
                         + (f": {detail[0]}" if detail else ""))

    def cancel(self) -> None:
        """No container will come: returns once the monitor has exited (a no-op after start)."""
        if self._go_w >= 0:
            self._tell({"cancel": True})
            self._finish()

    def _finish(self) -> bytes:
        """The ready pipe, to its end."""
        chunks = []
        while chunk := os.read(self._ready_r, 4096):
            chunks.append(chunk)
        os.close(self._ready_r)
        return b"".join(chunks)

    def _tell(self, message: dict) -> None:
        try:
            os.write(self._go_w, json.dumps(message).encode() + b"\n")
        except BrokenPipeError:
            pass  # the monitor died; the ready pipe's EOF reports it
        os.close(self._go_w)
        self._go_w = -1


def spawn(engine, container, *, attach_wait: bool = False, standby=None) -> int:
    """Start the monitor of `container`; return the container's host PID once its command runs.

    `standby`: the Standby the caller forked early for this container, else
    one is forked now. Raises the runtime's errors (StartError 125,
    CommandNotFound 127, CommandNotExecutable 126) when the command could
    not be started.
    """
    if standby is None:
        # SQLite must not cross a fork: close our connection, the monitor opens its own
        # and this process reopens on next use.
        if "store" in engine.__dict__:
            engine.__dict__.pop("store").close()
        # The monitor builds an engine like its caller's (the engine sits above
        # this package, so it is never imported from here).
        make, config = type(engine), engine.config
        standby = Standby(lambda: make(config))
    return standby.start(engine, container, attach_wait=attach_wait)
