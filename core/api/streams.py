"""Hijacked connections (attach, exec) and Docker's stream framing.

A client asks for the raw connection with `Connection: Upgrade` and
`Upgrade: tcp`; the answer is `101 UPGRADED` (200 for a client that did not
ask), and from then on the socket carries the container's streams: raw
bytes with a TTY, else Docker's multiplexed frames (8-byte header: stream
1 stdout / 2 stderr, three zero bytes, the payload's length big-endian).
What the client sends is the container's stdin; its half-close is stdin's
EOF (the transport stays open for our output: server._Handler).

`attach_monitor` connects such a connection to the container's monitor
(berth.core.containers.attach's protocol on `attach.sock`).
"""

from __future__ import annotations

import asyncio
import json
import struct

from aiohttp import web

STDOUT, STDERR = 1, 2
RAW = "application/vnd.docker.raw-stream"
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
_HEADER = struct.Struct(">BxxxI")


def frame(stream: int, data: bytes) -> bytes:
    return _HEADER.pack(stream, len(data)) + data


def stream_type(request: web.Request, tty: bool) -> str:
    from berth.core.api.server import api_version

    return RAW if tty or api_version(request) < (1, 42) else MULTIPLEXED


class Hijacked(web.StreamResponse):
    """A response that is the start of a raw connection: no length, no chunks."""

    _length_check = False


class HijackInput:
    """What the client sends after the hijack (aiohttp's protocol feeds it)."""

    def __init__(self):
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed_data(self, data: bytes):
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")

    async def read(self) -> bytes:
        return await self.queue.get()


async def hijack(request: web.Request, content_type: str) -> tuple[Hijacked, HijackInput | None]:
    """Answer 101 (or 200) and take the connection over; the input is None
    when the client did not upgrade (then it sends nothing more)."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp" \
        and "upgrade" in request.headers.get("Connection", "").lower()
    response = Hijacked(status=101 if upgrade else 200, headers={"Content-Type": content_type})
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()
    await response.prepare(request)
    if not upgrade:
        return response, None
    source = HijackInput()
    protocol = request.protocol
    protocol.hijack_input = source
    protocol.set_parser(source)
    return response, source


def client_gone(request: web.Request) -> bool:
    """The client closed its connection, or the service is stopping (SIGTERM ends every stream)."""
    transport = request.transport
    return transport is None or transport.is_closing() or request.app["service"].stopping.is_set()


async def watch_client(request: web.Request, task: asyncio.Task, every: float = 0.5) -> None:
    """Cancel `task` once the client's connection is gone."""
    while not task.done():
        await asyncio.sleep(every)
        if client_gone(request):
            task.cancel()
            return


async def attach_monitor(request: web.Request, response: web.StreamResponse, source: HijackInput | None,
                         socket_path: str, *, stdin: bool, stdout: bool, stderr: bool, tty: bool,
                         close_stdin: bool = True) -> int | None:
    """Pump between the hijacked connection and the container's monitor until
    the container exits (its exit code) or either side goes (None)."""
    from berth.core.containers import attach as monitor

    try:
        sock = monitor.connect(socket_path)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    hello = {"stdin": bool(stdin and source is not None), "stdout": stdout, "stderr": stderr}
    writer.write(json.dumps(hello).encode() + b"\n")
    frames = monitor.FrameReader()

    async def outputs() -> int | None:
        while True:
            data = await reader.read(65536)
            if not data:
                return None
            for kind, payload in frames.feed(data):
                if kind == monitor.EXIT:
                    return int(payload or b"0")
                if kind not in (monitor.STDOUT, monitor.STDERR) or not payload:
                    continue
                stream = STDOUT if kind == monitor.STDOUT else STDERR
                await response.write(payload if tty else frame(stream, payload))

    async def inputs() -> None:
        while True:
            data = await source.read()
            if not data:
                if close_stdin:
                    writer.write(monitor.frame(monitor.STDIN_EOF))
                return
            writer.write(monitor.frame(monitor.STDIN, data))
            await writer.drain()

    out_task = asyncio.ensure_future(outputs())
    in_task = asyncio.ensure_future(inputs()) if hello["stdin"] else None
    watch = asyncio.ensure_future(watch_client(request, out_task))
    try:
        return await out_task
    except (asyncio.CancelledError, ConnectionResetError, ConnectionError):
        return None
    finally:
        for task in (in_task, watch):
            if task is not None:
                task.cancel()
        writer.close()


async def send_resize(socket_path: str, rows: int, cols: int) -> None:
    """Resize a TTY container's terminal: a short attach that only sends RESIZE."""
    from berth.core.containers import attach as monitor

    try:
        sock = monitor.connect(socket_path)
    except (FileNotFoundError, ConnectionRefusedError):
        return
    _, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(json.dumps({"stdin": False, "stdout": False, "stderr": False}).encode() + b"\n")
    writer.write(monitor.frame(monitor.RESIZE, struct.pack(">HH", rows, cols)))
    await writer.drain()
    writer.close()
