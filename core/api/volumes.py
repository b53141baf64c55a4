"""/volumes/...: thin handlers over engine.volumes."""

from __future__ import annotations

from aiohttp import web

from berth.core.api.server import bad_request, json_body, json_response, query_bool, query_filters, service_of


async def list_(request: web.Request) -> web.Response:
    filters = query_filters(request)
    volumes = await service_of(request).call(lambda e: e.volumes.list(filters))
    return json_response({"Volumes": volumes, "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await service_of(request).call(lambda e: e.volumes.inspect(name)))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, default={})
    name, driver = body.get("Name") or None, body.get("Driver") or None
    options = {} if body.get("DriverOpts") is None else body["DriverOpts"]
    labels = {} if body.get("Labels") is None else body["Labels"]
    for value, what in ((name, "Name"), (driver, "Driver")):
        if value is not None and not isinstance(value, str):
            raise bad_request(f"json: cannot unmarshal into Go struct field {what} of type string")
    for value, what in ((options, "DriverOpts"), (labels, "Labels")):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad_request(f"json: cannot unmarshal into Go struct field {what} of type map[string]string")
    if body.get("ClusterVolumeSpec"):
        raise bad_request("berth does not support cluster volumes")
    volume = await service_of(request).call(lambda e: e.volumes.create(name, driver, options, labels))
    return json_response(volume, status=201)


async def remove(request: web.Request) -> web.Response:
    name, force = request.match_info["name"], query_bool(request, "force")
    await service_of(request).call(lambda e: e.volumes.remove(name, force=force))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = query_filters(request)
    all_ = (filters.pop("all", None) or ["false"])[0].lower() in ("true", "1")
    if filters:
        raise bad_request(f"berth does not support the volume prune filters {', '.join(sorted(filters))} yet")
    removed = await service_of(request).call(lambda e: e.volumes.prune(all_))
    return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": 0})


ROUTES = [
    ("GET", "/volumes", list_),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
