"""_ping, /version, /info, /events, /system/df, /auth; and a container's stats."""

from __future__ import annotations

import asyncio
import json
import os
import platform

from aiohttp import web

from berth.core.api.server import (
    API_VERSION,
    MIN_API_VERSION,
    bad_request,
    json_body,
    json_response,
    query_filters,
    service_of,
)

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def _version() -> str:
    from berth.core import __version__

    return __version__


def arch() -> str:
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


async def ping(request: web.Request) -> web.Response:
    headers = {"Api-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false",
               "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8",
                                                 "Content-Length": "0"})
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    release = platform.release()
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch(),
               "KernelVersion": release, "GitCommit": "", "GoVersion": f"python{platform.python_version()}",
               "BuildTime": "", "Experimental": "false"}
    return json_response({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": _version(), "Details": details}],
        "Version": _version(), "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}", "Os": "linux", "Arch": arch(), "KernelVersion": release,
        "BuildTime": "",
    })


async def info(request: web.Request) -> web.Response:
    from berth.core.engine import info_data

    data = await service_of(request).call(info_data)
    data = dict(data)
    data["Architecture"] = platform.machine()
    data.setdefault("Runtimes", {"berth": {"path": "berth"}})
    data.setdefault("SecurityOptions", ["name=seccomp,profile=builtin"])
    data.setdefault("Swarm", {"LocalNodeState": "inactive", "ControlAvailable": False, "NodeID": "",
                              "NodeAddr": "", "RemoteManagers": None})
    data.setdefault("RegistryConfig", {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                                       "Mirrors": []})
    data.setdefault("Labels", [])
    data.setdefault("ExperimentalBuild", False)
    data.setdefault("Warnings", None)
    plugins = data.get("Plugins") or {}
    data["Plugins"] = {"Volume": plugins.get("Volume") or [], "Network": plugins.get("Network") or [],
                       "Log": plugins.get("Log") or [], "Authorization": None}
    return json_response(data)


async def events(request: web.Request) -> web.StreamResponse:
    from berth.core.api.containers import _STARTED, stream_in_thread
    from berth.core.plumbing.events import check_filters, matches
    from berth.core.plumbing.units import parse_since

    service = service_of(request)
    filters = query_filters(request)
    check_filters(filters)
    since, until = request.query.get("since"), request.query.get("until")
    try:
        since_ns = int(parse_since(since) * 1e9) if since else None
        until_ns = int(parse_since(until) * 1e9) if until else None
    except Exception:
        raise bad_request(f"invalid time: {since or until}") from None
    gone = asyncio.Event()

    def journal(engine, stop):
        return engine.journal.read(since_ns=since_ns, until_ns=until_ns, follow=until_ns is None, stop=stop)

    queue = stream_in_thread(service, journal, gone)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        while True:
            item = await queue.get()
            if item is None or isinstance(item, BaseException):
                break
            if item is _STARTED or not matches(item, filters):
                continue
            await response.write(json.dumps(item, separators=(",", ":")).encode() + b"\n")
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        gone.set()
    return response


async def df(request: web.Request) -> web.Response:
    """`docker system df [-v]`: what `berth system df` counts (engine.disk_usage), in Docker's
    DiskUsage shape; `type=` (container, image, volume, build-cache) answers those only."""
    from berth.core.api.containers import summary
    from berth.core.api.images import image_summary
    from berth.core.engine import disk_usage

    kinds = set(request.query.getall("type", [])) or {"container", "image", "volume", "build-cache"}
    for kind in kinds:
        if kind not in ("container", "image", "volume", "build-cache"):
            raise bad_request(f"invalid type: {kind}")

    def job(engine):
        usage = disk_usage(engine)
        out = {}
        if "image" in kinds:
            out["LayersSize"] = sum(img.size for img, _ in usage["images"])
            out["Images"] = [image_summary(img, containers=n, shared_size=usage["shared"][img.id])
                              for img, n in usage["images"]]
        if "container" in kinds:
            out["Containers"] = [{**summary(engine, c, False), "SizeRw": size, "SizeRootFs": size}
                                 for c, size in usage["containers"]]
        if "volume" in kinds:
            out["Volumes"] = [{**v, "UsageData": {"Size": size, "RefCount": users}}
                              for v, size, users in usage["volumes"]]
        if "build-cache" in kinds:
            out["BuildCache"] = usage["build_cache"]
        return out

    return json_response(await service_of(request).call(job))


async def auth(request: web.Request) -> web.Response:
    body = await json_body(request)
    server = body.get("serveraddress") or "docker.io"
    username, password = body.get("username") or "", body.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str) or not isinstance(server, str):
        raise bad_request("json: cannot unmarshal into Go value of type registry.AuthConfig")

    host = server.split("://", 1)[-1].split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = "docker.io"

    def job(engine):
        from berth.core.images.transfer import open_registry

        open_registry(engine, host, credentials=(username, password)).login(username, password)

    await service_of(request).call(job)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


# -- stats -----------------------------------------------------------------------------------


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def container_stats(engine, container_id: str, previous: dict | None) -> dict:
    """Docker's stats JSON for one container (zeros when it does not run)."""
    from berth.core.plumbing.units import now_iso
    from berth.core.runtime.cgroups import read_stats

    c = engine.containers.get(container_id)
    snapshot = read_stats(c.pid) if c.running and c.pid else None  # what `berth stats` shows
    cpus = os.cpu_count() or 1
    cpu = {"cpu_usage": {"total_usage": snapshot.cpu_usage_ns if snapshot else 0, "usage_in_kernelmode": 0,
                         "usage_in_usermode": 0},
           "system_cpu_usage": _system_cpu_ns() if snapshot else 0, "online_cpus": cpus if snapshot else 0,
           "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    memory = {}
    if snapshot:
        limit = snapshot.memory_limit or _mem_total()
        memory = {"usage": snapshot.memory_usage, "limit": limit, "stats": {}}
    empty_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                 "system_cpu_usage": 0, "online_cpus": 0,
                 "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {
        "read": now_iso() if snapshot else "0001-01-01T00:00:00Z",
        "preread": previous["read"] if previous else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": snapshot.pids} if snapshot else {},
        "blkio_stats": _blkio(snapshot),
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu, "precpu_stats": previous["cpu_stats"] if previous else empty_cpu,
        "memory_stats": memory, "name": "/" + c.name, "id": c.id,
        **({"networks": snapshot.interfaces} if snapshot and snapshot.interfaces else {}),
    }


def _blkio(snapshot) -> dict:
    """Bytes read and written by the container's processes, as one device's entries (the CLI sums them)."""
    empty = {"io_service_bytes_recursive": None, "io_serviced_recursive": None, "io_queue_recursive": None,
             "io_service_time_recursive": None, "io_wait_time_recursive": None, "io_merged_recursive": None,
             "io_time_recursive": None, "sectors_recursive": None}
    if snapshot is None:
        return empty
    return {**empty, "io_service_bytes_recursive": [
        {"major": 0, "minor": 0, "op": "read", "value": snapshot.block_read},
        {"major": 0, "minor": 0, "op": "write", "value": snapshot.block_write}]}


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


ROUTES = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", df),
    ("POST", "/auth", auth),
]
