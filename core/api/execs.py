"""Exec: POST /containers/{id}/exec, /exec/{id}/start (hijacked), /json, /resize.

The exec'd process is a child of the service (as it is of `berth exec`):
ContainerService.exec_spec/exec_start/exec_wait, the calls `berth exec`
makes. Its stdio are pipes (a pty with Tty) pumped to the hijacked
connection; its exit code is recorded before the connection closes, so a
client's inspect right after sees it.
"""

from __future__ import annotations

import asyncio
import os
import threading

from aiohttp import web

from berth.core.api import streams
from berth.core.api.server import ApiError, bad_request, json_body, json_response, service_of
from berth.core.plumbing.ids import random_hex

KEEP = 1000  # finished execs remembered for inspect


class Exec:
    def __init__(self, exec_id: str, container, spec, body: dict):
        self.id, self.container, self.spec = exec_id, container, spec
        self.attach_stdin = bool(body.get("AttachStdin"))
        self.attach_stdout = bool(body.get("AttachStdout"))
        self.attach_stderr = bool(body.get("AttachStderr"))
        self.tty = bool(body.get("Tty"))
        self.privileged = bool(body.get("Privileged"))
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.master: int | None = None

    def inspect(self) -> dict:
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code, "CanRemove": False,
            "ContainerID": self.container.id, "DetachKeys": "", "OpenStdin": self.attach_stdin,
            "OpenStdout": self.attach_stdout, "OpenStderr": self.attach_stderr, "Pid": self.pid,
            "ProcessConfig": {"tty": self.tty, "entrypoint": self.spec.args[0], "arguments": self.spec.args[1:],
                              "privileged": self.privileged, "user": self.spec.user},
        }


def _strings(body: dict, key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"json: cannot unmarshal into Go struct field ExecConfig.{key} of type []string")
    return value


async def create(request: web.Request) -> web.Response:
    service = service_of(request)
    ref = request.match_info["id"]
    body = await json_body(request)
    command, env = _strings(body, "Cmd"), _strings(body, "Env")
    if not command:
        raise bad_request("No exec command specified")
    user, workdir = body.get("User") or None, body.get("WorkingDir") or None
    for value in (user, workdir):
        if value is not None and not isinstance(value, str):
            raise bad_request("json: cannot unmarshal into Go struct field of type string")
    tty, privileged = bool(body.get("Tty")), bool(body.get("Privileged"))

    def job(engine):
        c = engine.containers.get(ref)
        return c, engine.containers.exec_spec(c, command, env=env, workdir=workdir, user=user, tty=tty,
                                                  privileged=privileged)

    try:
        container, spec = await service.call(job)
    except Exception as exc:
        from berth.core.errors import FailedPrecondition

        if isinstance(exc, FailedPrecondition):
            raise ApiError(409, exc.message) from None
        raise
    exec_id = random_hex(32)
    if len(service.execs) >= KEEP:
        for old in [e for e in service.execs.values() if e.exit_code is not None][:KEEP // 2]:
            service.execs.pop(old.id, None)
    service.execs[exec_id] = Exec(exec_id, container, spec, body)
    return json_response({"Id": exec_id}, status=201)


def _get(request: web.Request) -> Exec:
    exec_id = request.match_info["id"]
    found = service_of(request).execs.get(exec_id)
    if found is None:
        raise ApiError(404, f"No such exec instance: {exec_id}")
    return found


async def inspect(request: web.Request) -> web.Response:
    return json_response(_get(request).inspect())


async def resize(request: web.Request) -> web.Response:
    from berth.core.containers.attach import set_window_size

    ex = _get(request)
    try:
        rows, cols = int(request.query.get("h", 0)), int(request.query.get("w", 0))
    except ValueError:
        raise bad_request("invalid height or width") from None
    if ex.master is not None and rows and cols:
        set_window_size(ex.master, rows, cols)
    return web.Response(status=201)


def _in_thread(fn, *args) -> asyncio.Future:
    """fn(*args) on a thread of its own (a wait that may last hours is no pool thread)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def run():
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting handler
            error = exc
            loop.call_soon_threadsafe(lambda: future.done() or future.set_exception(error))
        else:
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(result))

    threading.Thread(target=run, name="berth-api-exec", daemon=True).start()
    return future


async def start(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    ex = _get(request)
    body = await json_body(request, default={})
    if ex.started:
        raise ApiError(409, f"Error: Exec command {ex.id} has already run")
    ex.started = True
    detach = bool(body.get("Detach"))
    spec, close_after, ours = ex.spec, [], {}
    if detach:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        spec.stdin = spec.stdout = spec.stderr = null
        close_after.append(null)
    elif ex.tty:
        from berth.core.runtime.devices import open_pty

        master, slave = open_pty(ex.container.pid)  # in the container's own devpts, as runc's
        os.set_blocking(master, False)
        ex.master = master
        size = body.get("ConsoleSize")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
            from berth.core.containers.attach import set_window_size

            set_window_size(slave, size[0], size[1])
        spec.stdin = spec.stdout = spec.stderr = slave
        close_after.append(slave)
        ours = {master: None}
    else:
        if ex.attach_stdin:
            stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
            spec.stdin = stdin_r
            close_after.append(stdin_r)
            os.set_blocking(stdin_w, False)
            ours["stdin"] = stdin_w
        else:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            spec.stdin = null
            close_after.append(null)
        for name, stream in (("stdout", streams.STDOUT), ("stderr", streams.STDERR)):
            r, w = os.pipe2(os.O_CLOEXEC)
            setattr(spec, name, w)
            close_after.append(w)
            os.set_blocking(r, False)
            ours[r] = stream
    response = source = None
    if not detach:  # the client has the 101 before any output comes (docker-py reads it buffered)
        response, source = await streams.hijack(request, streams.stream_type(request, ex.tty))
    try:
        ex.pid = await service.call(lambda e: e.containers.exec_start(ex.container, spec))
    except BaseException as exc:
        for fd in list(ours.values()) + list(ours):
            if isinstance(fd, int) and fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        from berth.core.errors import BerthError

        if response is None or not isinstance(exc, BerthError):
            raise
        ex.exit_code = exc.exit_code if exc.exit_code in (126, 127) else 126
        message = exc.message.encode() + b"\r\n"  # after the hijack, Docker writes the error in the stream
        await response.write(message if ex.tty else streams.frame(streams.STDERR, message))
        return response
    finally:
        for fd in close_after:
            os.close(fd)
    ex.running = True
    engine_wait = _in_thread(lambda: service.make_engine().containers.exec_wait(ex.container, spec, ex.pid))
    if detach:
        engine_wait.add_done_callback(lambda f: _finished(ex, f))
        return web.Response(status=200)
    stdin_fd = ex.master if ex.tty else ours.pop("stdin", None)
    outputs = {fd: stream for fd, stream in ours.items() if isinstance(fd, int)}
    try:
        await _pump(request, response, source if ex.attach_stdin else None, outputs, stdin_fd, ex.tty)
    finally:
        if stdin_fd is not None and not ex.tty:
            try:
                os.close(stdin_fd)
            except OSError:
                pass
    try:
        await engine_wait
    finally:
        _finished(ex, engine_wait)
        for fd in outputs:
            try:
                os.close(fd)
            except OSError:
                pass
        ex.master = None
    return response


def _finished(ex: Exec, future: asyncio.Future) -> None:
    ex.running = False
    if future.done() and not future.cancelled() and future.exception() is None:
        ex.exit_code = future.result()
    elif ex.exit_code is None:
        ex.exit_code = 126


async def _pump(request, response, source, outputs: dict[int, int | None], stdin_fd: int | None, tty: bool) -> None:
    """Copy the process's outputs to the client (framed unless tty) and the
    client's input to its stdin, until every output is at EOF."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    open_fds = set(outputs)

    def readable(fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last writer is gone
            data = b""
        if not data:
            loop.remove_reader(fd)
        queue.put_nowait((fd, data))

    for fd in outputs:
        loop.add_reader(fd, readable, fd)

    async def feed_stdin() -> None:
        while True:
            data = await source.read()
            if not data:
                if tty:
                    await _write_fd(stdin_fd, b"\x04")
                elif stdin_fd is not None:
                    os.close(stdin_fd)
                return
            await _write_fd(stdin_fd, data)

    feeder = asyncio.ensure_future(feed_stdin()) if source is not None and stdin_fd is not None else None
    client_ok = True
    try:
        while open_fds:
            fd, data = await queue.get()
            if not data:
                open_fds.discard(fd)
                continue
            if client_ok:
                try:
                    await response.write(data if tty or outputs[fd] is None else streams.frame(outputs[fd], data))
                except (ConnectionResetError, ConnectionError):
                    client_ok = False  # keep draining: the process must not block on a full pipe
    finally:
        for fd in open_fds:
            loop.remove_reader(fd)
        if feeder is not None:
            feeder.cancel()


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(0.005)
            continue
        except OSError:
            return
        view = view[n:]


ROUTES = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("GET", "/exec/{id}/json", inspect),
    ("POST", "/exec/{id}/resize", resize),
]
