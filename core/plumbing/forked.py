"""Work in a forked child: a process of its own, with a GIL of its own.

`Forked(prepare, work)` forks at once; the child runs `prepare()` (say,
importing a slow library) while the parent goes on, then waits for the
argument. `send(arg)` hands it over and returns `work(arg)`'s result. Both
travel as one line of JSON each (not "until EOF": processes the parent
forks meanwhile hold copies of the pipe). A BerthError raised in the child
is raised again in the parent as the same class; anything else as a
BerthError naming it.

The fork must come before the parent opens its store (an SQLite
connection must not be shared across a fork); the child opens its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from berth.core import errors

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any


class Forked:
    def __init__(self, prepare: Callable[[], None], work: Callable[[Any], Any]):
        arg_r, self._arg_w = os.pipe2(os.O_CLOEXEC)
        self._result_r, result_w = os.pipe2(os.O_CLOEXEC)
        try:
            self._pid = os.fork()
        except OSError:
            for fd in (arg_r, self._arg_w, self._result_r, result_w):
                os.close(fd)
            raise
        if self._pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(self._arg_w)
                os.close(self._result_r)
                message = _call(prepare, work, arg_r)
                if message is not None:
                    os.write(result_w, json.dumps(message).encode() + b"\n")
            finally:
                os._exit(0)
        os.close(arg_r)
        os.close(result_w)
        self._open = True  # our ends of the pipes

    def send(self, arg: Any = None) -> Any:
        """Give the child its argument; return what `work` returned, or raise what it raised."""
        self._tell({"arg": arg})
        with os.fdopen(self._result_r, "rb") as f:
            raw = f.readline()
        self.reap()
        message = json.loads(raw) if raw else {"error": "BerthError", "message": "the forked worker died"}
        if "error" in message:
            cls = getattr(errors, message["error"], None)
            if not (isinstance(cls, type) and issubclass(cls, errors.BerthError)):
                cls = errors.BerthError
            raise cls(message["message"])
        return message["result"]

    def cancel(self) -> None:
        """No argument will come: the child exits without working. (A no-op
        once sent or cancelled.)"""
        if not self._open:
            return
        self._tell({"cancel": True})
        os.close(self._result_r)
        self.reap()

    def reap(self) -> None:
        """Wait for the child to exit (a no-op where it is not our child)."""
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass

    def _tell(self, message: dict) -> None:
        self._open = False
        try:
            os.write(self._arg_w, json.dumps(message).encode() + b"\n")
        except BrokenPipeError:
            pass  # the child died; send() reports it
        os.close(self._arg_w)


def _call(prepare, work, arg_r: int) -> dict | None:  # pragma: no cover - runs in the child
    try:
        prepare()
        with os.fdopen(arg_r, "rb") as f:
            raw = f.readline()
        told = json.loads(raw) if raw else {"cancel": True}
        if "arg" not in told:
            return None  # cancelled, or the parent is gone
        return {"result": work(told["arg"])}
    except errors.BerthError as exc:
        return {"error": type(exc).__name__, "message": exc.message}
    except BaseException as exc:
        return {"error": "BerthError", "message": f"{type(exc).__name__}: {exc}"}
