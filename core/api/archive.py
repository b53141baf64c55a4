"""/containers/{id}/archive (GET, HEAD, PUT): `docker cp`, and /containers/{id}/export, through the
container service's copy_from/copy_to/stat_path (what `berth cp` uses): the
tar stream crosses a pipe between the request and the forked child that
sees the container's files (berth.core.containers.copying).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading

from aiohttp import web

from berth.core.api.server import ApiError, bad_request, query_bool, service_of

MAX_ARCHIVE = 8 << 30  # bytes of tar a PUT may send


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise bad_request("Path cannot be empty")
    return path


def _stat_header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


async def head(request: web.Request) -> web.Response:
    ref, path = request.match_info["id"], _path(request)
    stat = await service_of(request).call(lambda e: e.containers.stat_path(ref, path))
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(stat),
                                             "Content-Type": "application/json"})


async def _until_forked(forked: threading.Event, copy: asyncio.Future) -> None:
    """Our end of the pipe stays open until the child has forked (it closes its copy by number:
    closed earlier, the number could name another descriptor by then)."""
    while not forked.is_set() and not copy.done():
        await asyncio.sleep(0.005)


def _closing(fd: int, job):
    """job(engine), then close `fd` (our end of the pipe the child writes or reads)."""
    def run(engine):
        try:
            return job(engine)
        finally:
            os.close(fd)
    return run


async def get(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    ref, path = request.match_info["id"], _path(request)
    stat = await service.call(lambda e: e.containers.stat_path(ref, path))  # a 404 before the stream starts
    return await stream_from(request, ref, path, {"X-Docker-Container-Path-Stat": _stat_header(stat)})


async def export(request: web.Request) -> web.StreamResponse:
    """`docker export`: the container's whole filesystem as a tar stream, as `berth export` writes it."""
    ref = request.match_info["id"]
    await service_of(request).call(lambda e: e.containers.get(ref))  # a 404 before the stream starts
    return await stream_from(request, ref, "/", {})


async def stream_from(request: web.Request, ref: str, path: str, headers: dict) -> web.StreamResponse:
    """The tar of `path` in the container (containers.copy_from, in a forked child) as the response."""
    service = service_of(request)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    forked = threading.Event()
    copy = asyncio.ensure_future(service.call(_closing(write_fd, lambda e: e.containers.copy_from(
        ref, path, "-", stream_fd=write_fd, other_end=read_fd, on_fork=forked.set))))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(read_fd, "rb", buffering=0))
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar", **headers})
    try:
        await response.prepare(request)
        while chunk := await reader.read(1 << 16):
            await response.write(chunk)
    except (ConnectionResetError, ConnectionError):
        pass  # the client went: closing our end stops the child
    finally:
        await _until_forked(forked, copy)
        transport.close()
        try:
            await copy
        except Exception:  # after the first byte, a failure can only cut the stream
            pass
    return response


async def put(request: web.Request) -> web.Response:
    service = service_of(request)
    ref, path = request.match_info["id"], _path(request)
    stat = await service.call(lambda e: e.containers.stat_path(ref, path))
    if not stat["mode"] & (1 << 31):
        raise bad_request("extraction point is not a directory")
    archive = query_bool(request, "copyUIDGID")
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    forked = threading.Event()
    copy = asyncio.ensure_future(service.call(_closing(read_fd, lambda e: e.containers.copy_to(
        ref, "-", path, archive=archive, stream_fd=read_fd, other_end=write_fd, on_fork=forked.set))))
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(write_fd, "wb", buffering=0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    sent = 0
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            sent += len(chunk)
            if sent > MAX_ARCHIVE or copy.done():
                break
            writer.write(chunk)
            await writer.drain()
    except (ConnectionResetError, ConnectionError, BrokenPipeError):
        pass
    finally:
        await _until_forked(forked, copy)
        transport.close()
    await copy  # its error (a bad tar, a read-only path) is the answer
    if sent > MAX_ARCHIVE:
        raise ApiError(413, f"archive too large (limit {MAX_ARCHIVE} bytes)")
    return web.Response(status=200)


ROUTES = [
    ("HEAD", "/containers/{id}/archive", head),
    ("GET", "/containers/{id}/archive", get),
    ("PUT", "/containers/{id}/archive", put),
    ("GET", "/containers/{id}/export", export),
]
