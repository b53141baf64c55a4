"""/networks/...: thin handlers over engine.networks."""

from __future__ import annotations

from aiohttp import web

from berth.core.api.server import bad_request, json_body, json_response, query_filters, request_shape, service_of


def _ref(request: web.Request) -> str:
    return request.match_info["id"]


async def list_(request: web.Request) -> web.Response:
    filters = query_filters(request)

    def job(engine):
        from berth.core.containers.container import label_match

        out = []
        for net in engine.networks.list():
            if "name" in filters and not any(v in net["Name"] for v in filters["name"]):
                continue
            if "id" in filters and not any(net["Id"].startswith(v) for v in filters["id"]):
                continue
            if "driver" in filters and net["Driver"] not in filters["driver"]:
                continue
            if "label" in filters and not all(label_match(net["Labels"] or {}, v) for v in filters["label"]):
                continue
            out.append(net)
        return out

    for key in filters:
        if key not in ("name", "id", "driver", "label", "type", "scope"):
            raise bad_request(f"invalid filter '{key}'")
    return json_response(await service_of(request).call(job))


async def inspect(request: web.Request) -> web.Response:
    ref = _ref(request)
    return json_response(await service_of(request).call(lambda e: e.networks.inspect(ref)))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    with request_shape():
        name, driver, subnet, gateway, internal, labels = _create_args(body)

    def job(engine):
        return engine.networks.create(name, driver=driver, subnet=subnet, gateway=gateway, internal=internal,
                                      labels=labels)

    info = await service_of(request).call(job)
    return json_response({"Id": info["Id"], "Warning": ""}, status=201)


def _create_args(body: dict):
    name = body.get("Name")
    if not name or not isinstance(name, str):
        raise bad_request("network name is required" if not name else "json: cannot unmarshal into Name of type string")
    driver = body.get("Driver") or "bridge"
    if not isinstance(driver, str):
        raise bad_request("json: cannot unmarshal into Driver of type string")
    # Attachable matters for swarm only (compose sets it): on a local network it changes nothing.
    for key in ("EnableIPv6", "Ingress", "ConfigOnly", "ConfigFrom", "Scope"):
        if key in ("ConfigFrom", "Scope") and body.get(key) in (None, "", "local", {}, {"Network": ""}):
            continue
        if body.get(key):
            raise bad_request(f"berth does not support {key} networks yet")
    if body.get("Options"):
        raise bad_request(f"berth does not support network options ({', '.join(sorted(body['Options']))}) yet")
    ipam = body.get("IPAM") or {}
    configs = (ipam.get("Config") or []) if isinstance(ipam, dict) else None
    if configs is None or not isinstance(configs, list) or len(configs) > 1:
        raise bad_request("berth supports one IPAM config (Subnet, Gateway) per network")
    if ipam.get("Driver") not in (None, "", "default"):
        raise bad_request(f"berth does not support the IPAM driver {ipam['Driver']}")
    subnet = gateway = None
    if configs:
        subnet, gateway = configs[0].get("Subnet") or None, configs[0].get("Gateway") or None
        if configs[0].get("IPRange") or configs[0].get("AuxiliaryAddresses"):
            raise bad_request("berth does not support IPRange or AuxiliaryAddresses yet")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise bad_request("json: cannot unmarshal into Labels of type map[string]string")
    internal = bool(body.get("Internal"))  # CheckDuplicate: berth refuses a duplicate name always (Docker 1.44)
    return name, driver, subnet, gateway, internal, labels


async def remove(request: web.Request) -> web.Response:
    ref = _ref(request)
    await service_of(request).call(lambda e: e.networks.remove(ref))
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    ref = _ref(request)
    body = await json_body(request)
    container = body.get("Container")
    if not container or not isinstance(container, str):
        raise bad_request("a container is required")
    settings = body.get("EndpointConfig") or {}
    if not isinstance(settings, dict) or not isinstance(settings.get("IPAMConfig") or {}, dict):
        raise bad_request("json: cannot unmarshal into EndpointConfig")
    if not isinstance(settings, dict):
        raise bad_request("json: cannot unmarshal into EndpointConfig")
    if settings.get("IPAMConfig") and any((settings["IPAMConfig"] or {}).values()):
        raise bad_request("berth does not support a static address (IPAMConfig) yet")
    aliases = [a for a in settings.get("Aliases") or () if isinstance(a, str)]
    await service_of(request).call(lambda e: e.networks.connect(ref, container, aliases))
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    ref = _ref(request)
    body = await json_body(request)
    container, force = body.get("Container"), bool(body.get("Force"))
    if not container or not isinstance(container, str):
        raise bad_request("a container is required")
    await service_of(request).call(lambda e: e.networks.disconnect(ref, container, force=force))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    if query_filters(request):
        raise bad_request("berth does not support filters on network prune yet")
    removed = await service_of(request).call(lambda e: e.networks.prune())
    return json_response({"NetworksDeleted": removed or None})


ROUTES = [
    ("GET", "/networks", list_),
    ("GET", "/networks/json", list_),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
