"""/containers/...: thin handlers over engine.containers (the service `berth
create/start/ps/logs/...` call)."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from berth.core.api import streams
from berth.core.api.server import (
    ApiError,
    bad_request,
    json_body,
    json_response,
    query_bool,
    query_filters,
    query_int,
    request_shape,
    service_of,
)
from berth.core.errors import BerthError, InvalidArgument, NotFound


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


async def _get(request: web.Request):
    ref = _ref(request)
    return await service_of(request).call(lambda e: e.containers.get(ref))


# -- create / list / inspect ------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    from berth.core.api.create import create_values

    body = await json_body(request)
    with request_shape():
        image, values, endpoints = create_values(body, request.query.get("name"))
    container, warnings = await service_of(request).call(_create, image, values, endpoints)
    return json_response({"Id": container.id, "Warnings": warnings}, status=201)


def _create(engine, image_name: str, values: dict, endpoints: dict):
    from berth.core.containers.container import CreateOptions
    from berth.core.containers.mounts import from_flags, with_image_volumes

    image = engine.images.get(image_name)
    from berth.core.containers import hostconfig

    specs = {key: values.pop(key, ()) for key in ("volumes", "mounts", "tmpfs", "volumes_from", "anonymous")}
    values["host_config"] = hostconfig.from_flags(values["host_config"])  # checked as the CLI's flags
    values["mounts"] = from_flags(engine, volume_driver=values["host_config"].get("VolumeDriver"), **specs)
    if values["endpoint"].get("MacAddress"):
        values["endpoint"]["MacAddress"] = hostconfig.mac_address(values["endpoint"]["MacAddress"])
    opts = CreateOptions(image=image_name, **values)
    with_image_volumes(engine, opts, image)
    try:
        container = engine.containers.create(opts, image)
    except NotFound as exc:  # a 404 from create means "pull the image" to clients: this is another object
        raise InvalidArgument(exc.message) from None
    mode = container.network_mode
    for network, settings in endpoints.items():
        if network in (mode, "default") or not isinstance(settings, dict):
            continue
        try:
            engine.networks.connect(network, container.id)
        except BerthError:
            engine.containers.remove(container, force=True)
            raise
    return container, list(opts.warnings)


async def list_(request: web.Request) -> web.Response:
    all_ = query_bool(request, "all")
    limit = query_int(request, "limit", -1)
    size = query_bool(request, "size")
    filters = query_filters(request)
    return json_response(await service_of(request).call(_list, all_, limit, size, filters))


def _list(engine, all_: bool, limit: int, size: bool, filters: dict) -> list[dict]:
    from berth.core.containers.container import check_filters, matches

    check_filters(filters)
    containers = engine.containers.list()
    if limit is not None and limit > 0:
        all_ = True
        containers = containers[:limit]
    if not all_ and "status" not in filters:
        containers = [c for c in containers if c.running]
    containers = [c for c in containers if matches(engine, c, filters)]
    return [summary(engine, c, size) for c in containers]


def summary(engine, c, size: bool) -> dict:
    from berth.core.containers.container import status_text
    from berth.core.plumbing.units import parse_time

    settings = c.network or {}
    ports = []
    for private, bindings in (settings.get("Ports") or {}).items():
        number, _, proto = private.partition("/")
        for b in bindings or [None]:
            entry = {"PrivatePort": int(number), "Type": proto or "tcp"}
            if b:
                entry.update(IP=b.get("HostIp") or "0.0.0.0", PublicPort=int(b.get("HostPort") or 0))
            ports.append(entry)
    try:
        from berth.core.containers.mounts import public
        mounts = [public(m) for m in c.mounts]
    except ImportError:
        mounts = list(c.mounts)
    out = {
        "Id": c.id, "Names": ["/" + c.name], "Image": c.image, "ImageID": c.image_id,
        "Command": " ".join(c.command), "Created": int(parse_time(c.created).timestamp()), "Ports": ports,
        "Labels": c.config.get("Labels") or {}, "State": c.status, "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": settings.get("Networks") or {}}, "Mounts": mounts,
    }
    if size:
        out["SizeRw"] = _size(engine, c)
        out["SizeRootFs"] = out["SizeRw"]
    return out


def _size(engine, c) -> int:
    try:
        return engine.containers.storage_for(c).usage(c.id)
    except BerthError:
        return 0


async def inspect(request: web.Request) -> web.Response:
    ref, size = _ref(request), query_bool(request, "size")

    def job(engine):
        c = engine.containers.get(ref)
        data = engine.containers.inspect(c)
        if size:
            data["SizeRw"] = data["SizeRootFs"] = _size(engine, c)
        return data

    return json_response(await service_of(request).call(job))


# -- lifecycle ------------------------------------------------------------------------------


async def start(request: web.Request) -> web.Response:
    service = service_of(request)
    c = await _get(request)
    if c.running:
        return web.Response(status=304)
    await service.starters.start(c.id, bool(service.attaching.get(c.id)))
    waiting = service.started.get(c.id)  # an attach waiting for this start
    if waiting is not None:
        waiting.set()
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    c = await _get(request)
    if not c.running:
        return web.Response(status=304)
    timeout = query_int(request, "t")
    await service_of(request).call(lambda e: e.containers.stop(c, timeout))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    service = service_of(request)
    c = await _get(request)
    timeout = query_int(request, "t")
    await service.call(lambda e: e.containers.stop(c, timeout))
    await service.starters.start(c.id, False)
    await service.call(lambda e: e.emit("container", "restart", c.id, c.attrs()))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    from berth.core.containers.container import signal_number

    c = await _get(request)
    sig = request.query.get("signal") or "KILL"
    signal_number(sig)  # a bad signal is a 400 before anything else
    if not c.running:
        raise ApiError(409, f"Container {c.id} is not running")
    await service_of(request).call(lambda e: e.containers.kill(c, sig))
    return web.Response(status=204)


async def pause(request: web.Request) -> web.Response:
    ref = _ref(request)
    await service_of(request).call(lambda e: e.containers.pause(ref))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    ref = _ref(request)
    await service_of(request).call(lambda e: e.containers.unpause(ref))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    ref, force, volumes = _ref(request), query_bool(request, "force"), query_bool(request, "v")
    if query_bool(request, "link"):
        raise bad_request("berth does not support removing links (link=1)")
    await service_of(request).call(lambda e: e.containers.remove(ref, force=force, volumes=volumes))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    ref, name = _ref(request), request.query.get("name", "")
    await service_of(request).call(lambda e: e.containers.rename(ref, name))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    if query_filters(request):
        raise bad_request("berth does not support filters on container prune yet")
    removed = await service_of(request).call(lambda e: e.containers.prune())
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


async def update(request: web.Request) -> web.Response:
    """Docker's UpdateConfig: the resources berth limits and the restart policy; any other
    resource set to something is a 400 naming it."""
    from berth.core.api.create import cpu_from_quota

    body = await json_body(request, default={})
    ref = _ref(request)
    with request_shape():
        changes = {key: body[key] for key in ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "PidsLimit",
                                              "CpusetCpus", "MemoryReservation", "RestartPolicy")
                   if body.get(key) not in (None, "", 0)}
        if body.get("CpuQuota"):
            changes["NanoCpus"] = int(cpu_from_quota(body["CpuQuota"], body.get("CpuPeriod")) * 1e9)
        ignored = ("CpuPeriod", "CpuQuota", "MemorySwappiness", "OomKillDisable")
        other = sorted(k for k, v in body.items()
                       if k not in changes and k not in ignored and v not in (None, "", 0, False, [], {}))
    if other:
        raise bad_request(f"berth does not support updating {', '.join(other)} of a container yet")
    for key, value in changes.items():
        if key != "RestartPolicy" and key != "CpusetCpus" and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad_request(f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                              f"UpdateConfig.{key} of type int64")
    await service_of(request).call(lambda e: e.containers.update(ref, changes))
    return json_response({"Warnings": []})


# -- wait ----------------------------------------------------------------------------------


async def wait(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition!r}")
    c = await _get(request)
    since_ns = time.time_ns()
    exited = service.exit_future(c.id)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)  # the client knows the wait is registered before it starts the container
    if condition == "not-running" and not c.running:
        code = int(c.state.get("ExitCode") or 0)
    else:
        code = await _wait(service, c, condition, since_ns, exited, request)
        if code is None:
            return response  # the client went away
    if service.exits.get(c.id) is exited:
        del service.exits[c.id]  # nothing per container outlives its waits (another waiter polls)
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response


async def _wait(service, c, condition: str, since_ns: int, exited: asyncio.Future, request) -> int | None:
    baseline = c.state.get("FinishedAt")
    last_code = None
    delay = 0.05
    while True:
        if streams.client_gone(request):
            return None
        try:
            code = await asyncio.wait_for(asyncio.shield(exited), timeout=delay)
        except asyncio.TimeoutError:
            code = None
        current = await service.call(_current, c.id)
        if current is None:
            if last_code is None:
                last_code = code if code is not None else await service.call(_exit_code_of, c.id, since_ns)
            return last_code
        if not current.running and (current.state.get("FinishedAt") != baseline or condition == "not-running"):
            last_code = int(current.state.get("ExitCode") or 0)
            if condition != "removed":
                return last_code
        delay = min(delay * 2, 0.5)


def _current(engine, container_id: str):
    current = engine.containers.load(container_id)
    return engine.containers.reconcile(current) if current is not None else None


def _exit_code_of(engine, container_id: str, since_ns: int) -> int:
    """The exit code the `die` event of a container that is gone recorded."""
    code = 0
    for event in engine.journal.read(since_ns=since_ns):
        if event["Actor"]["ID"] == container_id and event["Action"] == "die":
            code = int(event["Actor"]["Attributes"].get("exitCode") or 0)
    return code


# -- attach / resize -----------------------------------------------------------------------


async def attach(request: web.Request) -> web.StreamResponse:
    service = service_of(request)
    c = await _get(request)
    tty = bool(c.config.get("Tty"))
    want = {name: query_bool(request, name) for name in ("stdin", "stdout", "stderr")}
    response, source = await streams.hijack(request, streams.stream_type(request, tty))
    if query_bool(request, "logs"):  # what it printed so far first (docker-compose up, start -a)
        await _past_logs(service, c, response, want, tty)
    if not query_bool(request, "stream", True):
        return response
    if not c.running:
        container_id = c.id
        service.attaching[container_id] = service.attaching.get(container_id, 0) + 1
        try:
            c = await _until_started(service, c, request)
        finally:
            service.attaching[container_id] -= 1
            if not service.attaching[container_id]:
                del service.attaching[container_id]
                service.started.pop(container_id, None)
        if c is None:
            return response
    await service.call(lambda e: e.emit("container", "attach", c.id, c.attrs()))
    path = await service.call(lambda e: str(e.containers.run_dir(c.id) / "attach.sock"))
    code = await streams.attach_monitor(request, response, source, path, stdin=want["stdin"],
                                        stdout=want["stdout"], stderr=want["stderr"], tty=tty)
    future = service.exits.get(c.id)
    if code is not None and future is not None and not future.done():
        future.set_result(code)
    return response


async def _past_logs(service, c, response, want: dict, tty: bool) -> None:
    gone = asyncio.Event()
    queue = stream_in_thread(service, lambda engine, stop: engine.containers.logs(c, stop=stop), gone)
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                break
            if item is not _STARTED and want.get(item.stream):
                kind = streams.STDERR if item.stream == "stderr" else streams.STDOUT
                await response.write(item.line if tty else streams.frame(kind, item.line))
    finally:
        gone.set()


async def _until_started(service, c, request):
    """The container once it runs (None if it is removed or the client goes)."""
    event = service.started_event(c.id)
    while True:
        try:
            await asyncio.wait_for(event.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
        if streams.client_gone(request):
            return None
        current = await service.call(lambda e: e.containers.load(c.id))
        if current is None:
            return None
        if current.running:
            return current


async def resize(request: web.Request) -> web.Response:
    c = await _get(request)
    rows, cols = query_int(request, "h", 0), query_int(request, "w", 0)
    if not c.running:
        raise ApiError(409, f"Container {c.id} is not running")
    path = await service_of(request).call(lambda e: str(e.containers.run_dir(c.id) / "attach.sock"))
    if c.config.get("Tty") and rows and cols:
        await streams.send_resize(path, rows, cols)
    return web.Response(status=200)


# -- logs ------------------------------------------------------------------------------------


async def logs(request: web.Request) -> web.StreamResponse:
    from datetime import datetime, timezone

    from berth.core.plumbing.units import parse_since

    service = service_of(request)
    c = await _get(request)
    want_out, want_err = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (want_out or want_err):
        raise bad_request("Bad parameters: you must choose at least one stream")
    follow, timestamps = query_bool(request, "follow"), query_bool(request, "timestamps")
    tail = request.query.get("tail", "all")
    try:
        tail_n = None if tail in ("all", "") else int(tail)
    except ValueError:
        raise bad_request(f"invalid value for \"tail\": {tail}") from None
    since = request.query.get("since")
    until = request.query.get("until")
    since_dt = datetime.fromtimestamp(parse_since(since), timezone.utc) if since and since != "0" else None
    until_dt = datetime.fromtimestamp(parse_since(until), timezone.utc) if until and until != "0" else None
    tty = bool(c.config.get("Tty"))
    gone = asyncio.Event()

    def entries(engine, stop):
        return engine.containers.logs(c, follow=follow, since=since_dt, until=until_dt,
                                      tail=tail_n if tail_n is None or tail_n >= 0 else None, stop=stop)

    queue = stream_in_thread(service, entries, gone)
    first = await queue.get()  # an error (a driver that cannot read) is a status, not a broken stream
    if isinstance(first, BaseException):
        raise first
    response = web.StreamResponse(headers={"Content-Type": streams.stream_type(request, tty)})
    await response.prepare(request)
    item = first
    try:
        while item is not None:
            if isinstance(item, BaseException):
                break
            if item is not _STARTED and (item.stream == "stdout" and want_out or item.stream == "stderr" and want_err):
                data = item.line
                if timestamps:
                    data = _rfc3339(item.time).encode() + b" " + data
                kind = streams.STDERR if item.stream == "stderr" else streams.STDOUT
                await response.write(data if tty else streams.frame(kind, data))
            item = await queue.get()
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        gone.set()
    return response


def _rfc3339(dt) -> str:
    from datetime import timezone

    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}000Z"


_STARTED = object()


def stream_in_thread(service, make_iterator, gone: asyncio.Event) -> asyncio.Queue:
    """Run make_iterator(engine, stop) on a thread of its own (it may follow for
    hours: not a pool thread) and hand its items over a queue: first _STARTED
    or the exception that prevented it, then the items, then None. `stop()`
    turns true once `gone` is set (the client went away)."""
    import threading

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=256)

    def stop() -> bool:
        return gone.is_set() or service.stopping.is_set()

    def put(item) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop():
            try:
                future.result(timeout=0.5)
                return
            except TimeoutError:
                continue
        future.cancel()

    def run() -> None:
        engine = service.make_engine()
        try:
            iterator = make_iterator(engine, stop)
            put(_STARTED)
            for item in iterator:
                if stop():
                    break
                put(item)
            put(None)
        except BaseException as exc:  # handed over: the handler answers it
            put(exc)
        finally:
            store = engine.__dict__.get("store")
            if store is not None:
                store.close()

    threading.Thread(target=run, name="berth-api-stream", daemon=True).start()
    return queue


# -- processes, files, stats ---------------------------------------------------------------


async def top(request: web.Request) -> web.Response:
    ref = _ref(request)

    def job(engine):
        _, pids = engine.containers.top(ref)
        return [row for row in map(_process_row, pids) if row]

    rows = await service_of(request).call(job)
    return json_response({"Titles": ["UID", "PID", "PPID", "CMD"], "Processes": rows})


def _process_row(pid: int) -> list[str] | None:
    """UID, PID, PPID, CMD of a host process, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
    except (OSError, StopIteration):
        return None
    return [uid, str(pid), fields[1], cmd]


async def changes(request: web.Request) -> web.Response:
    ref = _ref(request)
    kinds = {"C": 0, "A": 1, "D": 2}
    found = await service_of(request).call(lambda e: e.containers.changes(ref))
    return json_response([{"Path": ch.path, "Kind": kinds.get(ch.kind, 0)} for ch in found] or None)


async def stats(request: web.Request) -> web.StreamResponse:
    from berth.core.api.system import container_stats

    service = service_of(request)
    c = await _get(request)
    stream = query_bool(request, "stream", True) and not query_bool(request, "one-shot")
    previous = None
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        while True:
            current = await service.call(container_stats, c.id, previous)
            if not stream and previous is None and not query_bool(request, "one-shot") and c.running:
                previous = current  # a one-off answer with a CPU delta over ~1 s, as Docker's
                await asyncio.sleep(1)
                current = await service.call(container_stats, c.id, previous)
            await response.write(json.dumps(current).encode() + b"\n")
            if not stream or service.stopping.is_set():
                break
            previous = current
            await asyncio.sleep(1)
    except (ConnectionResetError, ConnectionError, NotFound):
        pass
    return response


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("DELETE", "/containers/{id}", remove),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/update", update),
    ("POST", "/containers/{id}/wait", wait),
    ("POST", "/containers/{id}/attach", attach),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/logs", logs),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/stats", stats),
]
