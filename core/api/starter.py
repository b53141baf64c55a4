"""Starting containers from a process without threads.

A container's monitor is forked by whoever starts it (berth.core.containers.
standby), and SQLite must not cross a fork: the CLI closes its one
connection first, but the service has a connection per pool thread. So
the service forks its starters first thing, before it has a thread or a
store: each is a small single-threaded process that does exactly what
`berth start` does (engine.containers.start) for one container at a time,
told over a socketpair (a JSON line each way).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket

STARTERS = 2


class Starters:
    """A few starter processes; `await start(container_id, attach_wait)`."""

    def __init__(self, make_engine, count: int = STARTERS, close_in_child=()):
        self.sockets: list[socket.socket] = []
        self.pids: list[int] = []
        for _ in range(count):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the starter process
                code = 0
                try:
                    ours.close()
                    for other in self.sockets:
                        other.close()
                    for sock in close_in_child:
                        sock.close()
                    _serve(make_engine, theirs)
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            theirs.close()
            self.sockets.append(ours)
            self.pids.append(pid)
        self.free: asyncio.Queue | None = None

    async def start(self, container_id: str, attach_wait: bool) -> None:
        """Start the container in a starter; its error re-raised here as the same class."""
        if self.free is None:
            self.free = asyncio.Queue()
            for sock in self.sockets:
                sock.setblocking(False)
                self.free.put_nowait(await asyncio.open_unix_connection(sock=sock))
        reader, writer = await self.free.get()
        try:
            writer.write(json.dumps({"id": container_id, "attach_wait": attach_wait}).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            self.free.put_nowait((reader, writer))
        if not line:
            from berth.core.errors import BerthError

            raise BerthError("the container starter process died")
        answer = json.loads(line)
        if "error" in answer:
            raise _error(answer)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def _error(answer: dict):
    from berth.core import errors
    from berth.core.runtime import errors as runtime_errors

    cls = getattr(runtime_errors, answer.get("class", ""), None) or getattr(errors, answer.get("class", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.BerthError)) or cls is errors.ExitCode:
        cls = errors.BerthError
    return cls(answer["error"])


def _serve(make_engine, sock: socket.socket) -> None:  # pragma: no cover - runs in the starter
    import signal

    from berth.core.errors import BerthError

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the service ends us by closing the socket
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from berth.core.containers import monitor

    stream = sock.makefile("rwb", buffering=0)
    engine = make_engine()
    monitor._preload(engine, store=False)  # each monitor forked from here starts with its modules loaded
    for line in stream:
        request = json.loads(line)
        try:
            engine.containers.start(request["id"], attach_wait=request["attach_wait"])
            answer = {"ok": True}
        except BerthError as exc:
            answer = {"error": exc.message, "class": type(exc).__name__}
        except Exception as exc:  # a bug: reported to the client, the starter goes on
            answer = {"error": f"internal error: {type(exc).__name__}: {exc}", "class": "BerthError"}
        finally:
            if "store" in engine.__dict__:  # no connection outlives the request (the next start forks)
                engine.__dict__.pop("store").close()
        stream.write(json.dumps(answer).encode() + b"\n")
