"""POST /build: the classic builder's API (a context tar in the body, Docker's
JSON stream back), served by `berth build -` itself.

A build's RUN starts containers, and a container's monitor is forked by
whoever starts it: the service's threads hold SQLite connections that must
not cross a fork. So each build is a child process running the very command
a user types (`berth [global flags] build ... -`), the body on its stdin,
its output turned into `{"stream": ...}` lines, the image ID from --iidfile
into `{"aux": {"ID": ...}}`, a failure into `{"error": ..., "errorDetail": ...}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile

from aiohttp import web

from berth.core.api.server import bad_request, query_bool, service_of

UNSUPPORTED = ("remote", "cachefrom", "extrahosts", "memory", "memswap", "cpushares", "cpusetcpus", "cpuperiod",
               "cpuquota", "shmsize", "squash", "outputs", "session")


def _command_line(engine, request: web.Request, iidfile: str) -> list[str]:
    query = request.query
    for name in UNSUPPORTED:
        if query.get(name) not in (None, "", "0", "[]", "{}", "false"):
            raise bad_request(f"berth does not support the build parameter {name} yet")
    if query.get("version") == "2":
        raise bad_request("berth has no BuildKit: use the classic builder (DOCKER_BUILDKIT=0)")
    argv = [sys.executable, "-m", "berth.core.cli", "--root", str(engine.root), "--runroot", str(engine.runroot),
            "--storage-driver", engine.storage_driver_name, "build", "--iidfile", iidfile]
    for tag in query.getall("t", []):
        argv += ["-t", tag]
    if query.get("dockerfile"):
        argv += ["-f", query["dockerfile"]]
    for name, flag in (("buildargs", "--build-arg"), ("labels", "--label")):
        try:
            pairs = json.loads(query.get(name) or "{}")
        except ValueError:
            raise bad_request(f"invalid {name}: {query[name]}") from None
        if not isinstance(pairs, dict):
            raise bad_request(f"invalid {name}: {query[name]}")
        for key, value in pairs.items():
            argv += [flag, key if value is None else f"{key}={value}"]
    if query.get("target"):
        argv += ["--target", query["target"]]
    if query.get("networkmode") not in (None, "", "default"):
        argv += ["--network", query["networkmode"]]
    for name, flag in (("nocache", "--no-cache"), ("pull", "--pull"), ("forcerm", "--force-rm"), ("q", "-q")):
        if query_bool(request, name):
            argv.append(flag)
    if not query_bool(request, "rm", True):
        argv.append("--no-rm")
    return argv + ["-"]


async def build(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    engine = await service.call(lambda e: e)
    scratch = tempfile.mkdtemp(prefix=".api-build-", dir=engine.root)
    iidfile = os.path.join(scratch, "iid")
    try:
        argv = _command_line(engine, request, iidfile)
        child = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                     stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def feed() -> None:
            sent, head = 0, b""
            try:
                async for chunk in request.content.iter_chunked(1 << 16):
                    if len(head) < 512:
                        head += chunk[:512]
                    child.stdin.write(chunk)
                    sent += len(chunk)
                    await child.stdin.drain()
                if head[257:262] == b"ustar":
                    # The docker CLI's context with a Dockerfile from outside it ends without the
                    # last entry's padding and the end-of-archive blocks (Docker's reader accepts it):
                    # complete it; zeros after a complete archive are ignored.
                    child.stdin.write(b"\0" * (-sent % 512 + 1024))
                    await child.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the build stopped reading (a bad context): its error follows
            finally:
                child.stdin.close()

        async def relay() -> None:
            while chunk := await child.stdout.read(1 << 16):
                await response.write(json.dumps({"stream": chunk.decode(errors="replace")}).encode() + b"\r\n")

        feeding = asyncio.ensure_future(feed())
        try:
            await relay()
            errors = await child.stderr.read()
            code = await child.wait()
        except (ConnectionResetError, ConnectionError):
            child.send_signal(signal.SIGINT)  # the client went: the build stops as on ctrl-c (its cleanup runs)
            try:
                await asyncio.wait_for(child.wait(), 60)
            except asyncio.TimeoutError:
                child.kill()
                await child.wait()
            return response
        finally:
            feeding.cancel()
        if code == 0 and os.path.exists(iidfile):
            with open(iidfile) as f:
                image_id = f.read().strip()
            await response.write(json.dumps({"aux": {"ID": image_id}}).encode() + b"\r\n")
        else:
            message = errors.decode(errors="replace").strip().removeprefix("Error: ") or f"build exited {code}"
            await response.write(json.dumps({"errorDetail": {"message": message}, "error": message}).encode()
                                 + b"\r\n")
        return response
    finally:
        await service.blocking(_remove, scratch)


def _remove(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


ROUTES = [
    ("POST", "/build", build),
]
