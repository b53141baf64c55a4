"""/images/...: thin handlers over engine.images and the transfers `berth
pull/push/save/load` use. A pull or push answers Docker's JSON progress
stream: one object per line ({"status", "id", "progressDetail"}), an
{"error", "errorDetail"} object when it fails halfway."""

from __future__ import annotations

import asyncio
import base64
import json

from aiohttp import web

from berth.core.api.server import (
    bad_request,
    json_response,
    query_bool,
    query_filters,
    query_int,
    service_of,
)
from berth.core.errors import BerthError


def _name(request: web.Request) -> str:
    return request.match_info["name"]


def _ref_text(image: str, tag: str | None) -> str:
    if not tag:
        return image
    if tag.startswith("sha256:"):
        return f"{image}@{tag}"
    return f"{image}:{tag}"


# -- list / inspect / history --------------------------------------------------------------


async def list_(request: web.Request) -> web.Response:
    filters = query_filters(request)
    for key in filters:
        if key not in ("dangling", "reference", "label", "before", "since"):
            raise bad_request(f"invalid filter '{key}'")
    all_ = query_bool(request, "all")
    return json_response(await service_of(request).call(_list, all_, filters))


def _list(engine, all_: bool, filters: dict) -> list[dict]:
    import fnmatch

    from berth.core.containers.container import label_match
    from berth.core.oci import reference as refs

    images = engine.images.all()
    parents = {img.parent for img in images if img.parent}
    out = []
    for img in images:
        if not img.tags and img.id in parents and not all_:
            continue
        if "dangling" in filters and (filters["dangling"][0].lower() in ("true", "1")) != (not img.tags):
            continue
        if "reference" in filters:
            names = [refs.parse(t) for t in img.tags]
            if not any(fnmatch.fnmatch(r.familiar_name, p) or fnmatch.fnmatch(r.familiar, p)
                       for r in names for p in filters["reference"]):
                continue
        labels = (img.config.get("config") or {}).get("Labels") or {}
        if "label" in filters and not all(label_match(labels, v) for v in filters["label"]):
            continue
        out.append(image_summary(img))
    return out


def image_summary(img, containers: int = -1, shared_size: int = -1) -> dict:
    """Docker's ImageSummary (images/json, system/df); -1: not computed, as Docker's."""
    from berth.core.plumbing.units import parse_time

    return {
        "Id": img.id, "ParentId": img.parent or "", "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests, "Created": int(parse_time(img.created).timestamp()),
        "Size": img.size, "VirtualSize": img.size, "SharedSize": shared_size,
        "Labels": (img.config.get("config") or {}).get("Labels") or {}, "Containers": containers,
    }


async def inspect(request: web.Request) -> web.Response:
    name = _name(request)
    return json_response(await service_of(request).call(lambda e: e.images.inspect(e.images.get(name))))


async def history(request: web.Request) -> web.Response:
    name = _name(request)

    def job(engine):
        from berth.core.plumbing.units import parse_time

        rows = engine.images.history(engine.images.get(name))
        out = []
        for row in rows:
            created = row.get("Created")
            if isinstance(created, str):
                try:
                    created = int(parse_time(created).timestamp())
                except ValueError:
                    created = 0
            out.append({"Id": row.get("Id") or "<missing>", "Created": created or 0,
                        "CreatedBy": row.get("CreatedBy", ""), "Tags": row.get("Tags") or None,
                        "Size": row.get("Size", 0), "Comment": row.get("Comment", "")})
        return out

    return json_response(await service_of(request).call(job))


# -- tag / remove / prune ---------------------------------------------------------------------


async def tag(request: web.Request) -> web.Response:
    name, repo, tag_ = _name(request), request.query.get("repo", ""), request.query.get("tag", "")
    if not repo:
        raise bad_request("repository name must have at least one component")
    target = f"{repo}:{tag_}" if tag_ else repo
    await service_of(request).call(lambda e: e.images.tag(name, target))
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    name, force = _name(request), query_bool(request, "force")

    def job(engine):
        from berth.core.images.image import containers_using

        return engine.images.remove(name, force=force, in_use_by=containers_using(engine))

    lines = await service_of(request).call(job)
    return json_response([{what: value} for what, value in lines])


async def prune(request: web.Request) -> web.Response:
    filters = query_filters(request)
    dangling_only = (filters.get("dangling") or ["true"])[0].lower() in ("true", "1")

    def job(engine):
        from berth.core.images.image import containers_using

        in_use = containers_using(engine)
        deleted = []
        for img in engine.images.all():
            if (img.tags and dangling_only) or in_use(img.id) or engine.images.children(img.id):
                continue
            try:
                for what, value in engine.images.remove(img.id, in_use_by=in_use):
                    deleted.append({what: value})
            except BerthError:
                continue
        return deleted

    deleted = await service_of(request).call(job)
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


# -- pull / push: Docker's JSON progress stream ----------------------------------------------------


class _Progress:
    """berth's progress callback (label, status, current, total) -> JSON lines on a queue."""

    def __init__(self, loop, queue: asyncio.Queue):
        self.loop, self.queue = loop, queue

    def __call__(self, label: str, status: str, current: int = 0, total: int = 0) -> None:
        line = {"status": status, "id": label}
        if status in ("Downloading", "Pushing", "Extracting"):
            line["progressDetail"] = {"current": current, "total": total}
        else:
            line["progressDetail"] = {}
        self.say(line)

    def say(self, line: dict) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, line)


async def _progress_stream(request: web.Request, job) -> web.StreamResponse:
    """Run job(engine, progress) on the pool, streaming what it reports; a
    failure before anything was sent is an ordinary error answer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    progress = _Progress(loop, queue)
    task = asyncio.ensure_future(service_of(request).call(job, progress))
    response = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                line = getter.result()
            else:
                getter.cancel()
                if not queue.empty():
                    continue
                break
            if response is None:
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                await response.prepare(request)
            await response.write(json.dumps(line).encode() + b"\r\n")
        try:
            task.result()
        except BerthError as exc:
            if response is None:
                raise
            await response.write(json.dumps({"errorDetail": {"message": exc.message},
                                             "error": exc.message}).encode() + b"\r\n")
    except (ConnectionResetError, ConnectionError):
        pass  # the client went; the transfer finishes on its own (nothing is left half-made)
    if response is None:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
    return response


def registry_auth(request: web.Request) -> tuple[str, str] | None:
    """X-Registry-Auth (base64url JSON): (username, password), or None."""
    header = request.headers.get("X-Registry-Auth")
    if not header:
        return None
    try:
        padded = header + "=" * (-len(header) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError):
        return None  # Docker ignores an unreadable header
    if isinstance(data, dict) and data.get("username") and data.get("password"):
        return str(data["username"]), str(data["password"])
    return None


async def create(request: web.Request) -> web.StreamResponse:
    """POST /images/create: fromImage (pull) or fromSrc (import)."""
    image, tag_ = request.query.get("fromImage", ""), request.query.get("tag", "")
    platform = request.query.get("platform") or None
    if request.query.get("fromSrc"):
        return await _import(request)
    if not image:
        raise bad_request("fromImage or fromSrc is required")
    name = _ref_text(image, tag_)
    credentials = registry_auth(request)

    def job(engine, progress):
        from berth.core.images.transfer import pull
        from berth.core.oci import reference as refs

        ref = refs.parse(name)
        progress.say({"status": f"Pulling from {ref.repository}", "id": ref.tag or ref.digest})
        results = pull(engine, ref, platform=platform, progress=progress, credentials=credentials)
        for result in results:
            progress.say({"status": f"Digest: {result.digest}"})
            status = "Image is up to date" if result.up_to_date else "Downloaded newer image"
            progress.say({"status": f"Status: {status} for {result.ref.familiar}"})

    return await _progress_stream(request, job)


async def _import(request: web.Request) -> web.StreamResponse:
    if request.query.get("fromSrc") != "-":
        raise bad_request("berth imports only from the request body (fromSrc=-)")
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    message = request.query.get("message", "")
    changes = request.query.getall("changes", [])
    reader = BodyReader(request)

    def job(engine, progress):
        from berth.core.images.dockerfile import apply_changes
        from berth.core.oci import reference as refs

        ref = refs.parse(f"{repo}:{tag_}" if repo and tag_ else repo) if repo else None
        image = engine.images.import_tarball(reader, ref, message, apply_changes({}, changes), "-")
        progress.say({"status": image.id})

    return await _progress_stream(request, job)


async def push(request: web.Request) -> web.StreamResponse:
    name = _ref_text(_name(request), request.query.get("tag"))
    credentials = registry_auth(request)

    def job(engine, progress):
        from berth.core.images.transfer import push as do_push

        for one, digest, size in do_push(engine, name, progress=progress, credentials=credentials):
            progress.say({"status": f"{one.tag}: digest: {digest} size: {size}"})
            progress.say({"progressDetail": {}, "aux": {"Tag": one.tag, "Digest": digest, "Size": size}})

    return await _progress_stream(request, job)


# -- save / load ----------------------------------------------------------------------------------


class BodyReader:
    """The request body as a blocking file for a pool thread (a tarball is
    streamed, never held in memory)."""

    def __init__(self, request: web.Request):
        self.content = request.content
        self.loop = asyncio.get_running_loop()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while True:
                chunk = self.read(1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        return asyncio.run_coroutine_threadsafe(self.content.read(n), self.loop).result()

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class BodyWriter:
    """A blocking file whose writes go to a streamed response (from a pool thread)."""

    def __init__(self, response: web.StreamResponse):
        self.response = response
        self.loop = asyncio.get_running_loop()

    def write(self, data) -> int:
        data = bytes(data)
        if data:
            asyncio.run_coroutine_threadsafe(self.response.write(data), self.loop).result()
        return len(data)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise OSError("not seekable")


async def save(request: web.Request) -> web.StreamResponse:
    names = request.query.getall("names", []) if "name" not in request.match_info else [_name(request)]
    if not names:
        raise bad_request("no image names given")
    service = service_of(request)
    await service.call(lambda e: [e.images.get(n) for n in names])  # 404 before the stream starts
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    writer = BodyWriter(response)

    def job(engine):
        from berth.core.images.transfer import save_archive

        save_archive(engine, names, writer)

    try:
        await service.call(job)
    except (BerthError, ConnectionResetError, ConnectionError):
        pass  # the stream is cut: the client sees a truncated archive
    return response


async def load(request: web.Request) -> web.Response:
    reader = BodyReader(request)

    def job(engine):
        from berth.core.images.transfer import load_archive

        return list(load_archive(engine, reader))

    lines = await service_of(request).call(job)
    body = b"".join(json.dumps({"stream": line + "\n"}).encode() + b"\r\n" for line in lines)
    return web.Response(body=body, content_type="application/json")


async def search(request: web.Request) -> web.Response:
    """`docker search`: the same search as `berth search` (images.transfer.search)."""
    from berth.core.images.transfer import search as search_

    term = request.query.get("term", "")
    if not term:
        raise bad_request("term is required")
    limit, filters = query_int(request, "limit", 25), query_filters(request)
    return json_response(await service_of(request).call(search_, term, limit, filters))


async def commit(request: web.Request) -> web.Response:
    from berth.core.api.server import json_body

    container = request.query.get("container", "")
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    comment, author = request.query.get("comment", ""), request.query.get("author", "")
    changes = request.query.getall("changes", [])
    pause = query_bool(request, "pause", True)
    body = await json_body(request, default={})
    if any(v not in (None, "", [], {}, False, 0) for k, v in body.items() if k not in ("Image", "Hostname")):
        raise bad_request("berth does not support a container config in the body of POST /commit yet; "
                          "use changes=")
    repository = f"{repo}:{tag_}" if repo and tag_ else repo or None
    image = await service_of(request).call(
        lambda e: e.containers.commit(container, repository=repository, message=comment, author=author,
                                      changes=changes, pause=pause))
    return json_response({"Id": image.id}, status=201)


ROUTES = [
    ("GET", "/images/json", list_),
    ("POST", "/images/create", create),
    ("POST", "/images/load", load),
    ("GET", "/images/get", save),
    ("GET", "/images/search", search),
    ("POST", "/images/prune", prune),
    ("POST", "/commit", commit),
    ("GET", "/images/{name:.+}/json", inspect),
    ("GET", "/images/{name:.+}/history", history),
    ("GET", "/images/{name:.+}/get", save),
    ("POST", "/images/{name:.+}/push", push),
    ("POST", "/images/{name:.+}/tag", tag),
    ("DELETE", "/images/{name:.+}", remove),
]
