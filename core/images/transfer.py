"""Copying images between the store and a transport: pull, push, load, save.

A *transport* is anything with the registry vocabulary of
berth.core.drivers.Registry: ``get_manifest(repo, ref, accept) -> (bytes,
media_type, digest)``, ``get_blob(repo, digest) -> stream``, ``has_blob``,
``put_blob(repo, digest, size, stream, mount_from=None)``,
``put_manifest(repo, ref, data, media_type) -> digest``. The HTTP registry
client and the archive formats are transports, so one `fetch` brings an
image into the store from either, and one `send` writes it to either.

Fetching: the manifest is validated (every field is untrusted), the config
and the layers are downloaded in parallel, each streamed into the content
store and verified against its digest there (never held in memory), blobs
the store already has are not downloaded again; only then is the image
registered (layers extracted, row last). On any failure the blobs this
fetch added are removed again: nothing is left half made.
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterable, Iterator

from berth.core.errors import BerthError, Corrupt, InvalidArgument, NotFound, RegistryError
from berth.core.oci import reference as refs
from berth.core.oci.content import check_digest
from berth.core.oci.mediatypes import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
)
from berth.core.oci.platform import choose_platform, parse_platform
from berth.core.plumbing.log import get_logger
from berth.core.plumbing.records import Record

log = get_logger("berth.transfer")

ACCEPT = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_MAX = 4 << 20  # the distribution spec's limit on a manifest
CONFIG_MAX = 8 << 20
PARALLEL = 4
CHUNK = 1 << 20

# progress(short_id, status, current, total): status is Docker's word for the step.
Progress = Callable[[str, str, int, int], None]


def _no_progress(short: str, status: str, current: int = 0, total: int = 0) -> None:
    pass


class Cancelled(BerthError):
    """The transfer was interrupted."""


# --------------------------------------------------------------------------
# manifests
# --------------------------------------------------------------------------


def _descriptor(desc, what: str) -> dict:
    if not isinstance(desc, dict):
        raise Corrupt(f"invalid manifest: {what} is not a descriptor")
    check_digest(desc.get("digest"))
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Corrupt(f"invalid manifest: {what} has no valid size")
    return desc


def parse_manifest(data: bytes, media_type: str | None) -> tuple[dict, str]:
    """Decode and check a manifest or index; return (document, media type)."""
    if len(data) > MANIFEST_MAX:
        raise Corrupt(f"manifest is {len(data)} bytes, over the {MANIFEST_MAX} byte limit")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Corrupt("invalid manifest: not JSON") from None
    if not isinstance(doc, dict):
        raise Corrupt("invalid manifest: not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise Corrupt(f"unsupported manifest schema version {doc.get('schemaVersion')!r} (only version 2)")
    inner = doc.get("mediaType")
    media_type = (media_type or "").split(";")[0].strip()
    if inner and media_type and media_type not in ("application/json", "application/octet-stream") \
            and inner != media_type:
        raise Corrupt(f"invalid manifest: its mediaType {inner} disagrees with the registry's {media_type}")
    kind = inner or media_type
    if "manifests" in doc and ("layers" in doc or "config" in doc):
        raise Corrupt("invalid manifest: it is both an image manifest and an index")
    if "manifests" in doc:
        if kind and kind not in INDEX_TYPES:
            raise Corrupt(f"invalid manifest: an index with media type {kind}")
        for i, desc in enumerate(doc.get("manifests") or []):
            _descriptor(desc, f"manifest {i}")
        return doc, kind or OCI_INDEX
    if kind and kind not in MANIFEST_TYPES:
        raise Corrupt(f"unsupported manifest media type {kind}")
    _descriptor(doc.get("config"), "config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise Corrupt("invalid manifest: no list of layers")
    for i, desc in enumerate(layers):
        _descriptor(desc, f"layer {i}")
    return doc, kind or OCI_MANIFEST


def resolve(source, repo: str, ref: str, platform=None) -> tuple[dict, bytes, str, str]:
    """Fetch `ref` and follow an index to the platform's manifest.

    Returns (manifest document, manifest bytes, media type, the digest of
    what `ref` names: the index's digest for a multi-platform image, as
    Docker records it).
    """
    data, media_type, digest = source.get_manifest(repo, ref, ACCEPT)
    _verify_manifest_digest(data, digest, ref)
    doc, kind = parse_manifest(data, media_type)
    top_digest = digest
    if kind in INDEX_TYPES:
        desc = choose_platform(doc, platform)
        data, media_type, digest = source.get_manifest(repo, desc["digest"], ACCEPT)
        _verify_manifest_digest(data, desc["digest"], desc["digest"])
        doc, kind = parse_manifest(data, media_type)
        if kind in INDEX_TYPES:
            raise Corrupt("invalid manifest list: an entry is itself an index")
    return doc, data, kind, top_digest


def _verify_manifest_digest(data: bytes, digest: str | None, ref: str) -> None:
    from berth.core.oci.content import sha256_bytes

    actual = sha256_bytes(data)
    if refs.is_digest(ref) and actual != ref:
        raise Corrupt(f"manifest digest mismatch: asked for {ref}, got {actual}")
    if digest and digest != actual:
        raise Corrupt(f"manifest digest mismatch: the registry says {digest}, the content is {actual}")


# --------------------------------------------------------------------------
# fetching into the store
# --------------------------------------------------------------------------


class _Reader:
    """Reads a blob stream for the content store, reporting progress, honouring cancel."""

    def __init__(self, stream: BinaryIO, on_read: Callable[[int], None], cancel: threading.Event):
        self.stream = stream
        self.on_read = on_read
        self.cancel = cancel

    def read(self, n: int = -1) -> bytes:
        if self.cancel.is_set():
            raise Cancelled("transfer cancelled")
        data = self.stream.read(CHUNK if n is None or n < 0 else n)
        if data:
            self.on_read(len(data))
        return data


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


class Fetched(Record):
    """What fetch() brought: the Image, how many blobs it transferred, and
    whether the image was already in the store."""

    REQUIRED = ("image", "downloaded", "existed")


def fetch(engine, source, repo: str, doc: dict, *, tags: Iterable[refs.Reference] = (), repo_digest: str | None = None,
          action: str = "pull", progress: Progress = _no_progress, staged: set[str] | None = None) -> Fetched:
    """Bring the image `doc` describes from `source` into the store.

    Caller holds the "gc" lock shared. `staged` names blobs an archive reader
    already put in the store (removed again, like our own, on failure).
    """
    content = engine.content
    config_desc = doc["config"]
    layers = doc["layers"]
    added: set[str] = set()
    lock = threading.Lock()
    cancel = threading.Event()
    existed = engine.images.find_id(config_desc["digest"]) is not None

    def download(desc: dict, is_layer: bool) -> None:
        digest, size = desc["digest"], desc["size"]
        label = short(digest)
        if content.exists(digest):
            if is_layer and not (staged and digest in staged):
                progress(label, "Already exists", size, size)
            return
        if cancel.is_set():
            raise Cancelled("transfer cancelled")
        done = [0]

        def on_read(n: int) -> None:
            done[0] += n
            if is_layer:
                progress(label, "Downloading", done[0], size)

        stream = source.get_blob(repo, digest)
        try:
            content.put(_Reader(stream, on_read, cancel), expected=digest, expected_size=size)
        except Corrupt as exc:
            raise Corrupt(f"blob {digest}: {exc}") from None
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        with lock:
            added.add(digest)
        if is_layer:
            progress(label, "Download complete", size, size)

    for desc in layers:
        if not content.exists(desc["digest"]):
            progress(short(desc["digest"]), "Pulling fs layer", 0, desc["size"])
    try:
        jobs = [(config_desc, False)] + [(d, True) for d in layers]
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="berth-pull") as pool:
            futures = [pool.submit(download, d, is_layer) for d, is_layer in jobs]
            try:
                futures[0].result()
                config_bytes, image_layers = _checked_config(content.read(config_desc["digest"]), layers)

                def blob_ready(index: int) -> None:  # layer `index` is extracted while later ones download
                    futures[index + 1].result()
                    progress(short(layers[index]["digest"]), "Extracting", layers[index]["size"], layers[index]["size"])

                engine.images.ensure_layers([l.diff_id for l in image_layers], [l.digest for l in image_layers],
                                            blob_ready)
                for fut in futures:
                    fut.result()
            except BaseException:
                cancel.set()
                raise
        image = engine.images.register(config_bytes, image_layers, tags=list(tags), repo_digest=repo_digest,
                                       action=action, manifest=doc)
    except BaseException:
        cancel.set()
        _discard(engine, added | (staged or set()))
        raise
    for desc in layers:
        if desc["digest"] in added:
            progress(short(desc["digest"]), "Pull complete", desc["size"], desc["size"])
    return Fetched(image=image, downloaded=len(added), existed=existed)


def _checked_config(config_bytes: bytes, layers: list[dict]) -> tuple[bytes, list]:
    """The image config, checked against the manifest's layers; and those layers."""
    from berth.core.images.image import Layer

    if len(config_bytes) > CONFIG_MAX:
        raise Corrupt(f"image config is {len(config_bytes)} bytes, over the {CONFIG_MAX} byte limit")
    try:
        config = json.loads(config_bytes)
    except (ValueError, UnicodeDecodeError):
        raise Corrupt("invalid image config: not JSON") from None
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise Corrupt(f"invalid image: the config lists {len(diff_ids or [])} layers, "
                      f"the manifest {len(layers)}")
    image_layers = []
    for desc, diff_id in zip(layers, diff_ids):
        check_digest(diff_id)
        media_type = desc.get("mediaType") or OCI_LAYER
        if media_type == OCI_LAYER and desc["digest"] != diff_id:
            raise Corrupt(f"layer {desc['digest']}: its content is {desc['digest']}, "
                          f"the image config says {diff_id}")
        image_layers.append(Layer(desc["digest"], desc["size"], media_type, diff_id))
    return config_bytes, image_layers


def _discard(engine, digests: set[str]) -> None:
    """Remove blobs that no image references (what a failed transfer added)."""
    for digest in digests:
        try:
            if not engine.images._blob_in_use(digest):
                engine.content.delete(digest)
        except Exception as exc:  # cleanup must not hide the real error
            log.warning("could not remove blob", digest=digest, error=str(exc))


# --------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------


def open_registry(engine, host: str, credentials: tuple[str, str] | None = None, auth_file=None):
    """The registry client for `host` (docker.io -> registry-1.docker.io); without
    `credentials`, those berth.core.oci.credentials finds (in `auth_file` only, when given)."""
    from berth.core import plugins

    cls = plugins.drivers("registry").get("docker")
    return cls.for_host(engine.config, host, credentials=credentials, auth_file=auth_file)


def search(engine, term: str, limit: int = 25, filters: dict[str, list[str]] | None = None) -> list[dict]:
    """`search TERM` and GET /images/search: the repositories matching `term` (`HOST/words`
    searches that registry's catalog, anything else Docker Hub's index), at most `limit`,
    passing Docker's filters (is-official, is-automated, stars). Each a dict as Docker's
    daemon answers: name, description, star_count, is_official, is_automated."""
    if limit < 1 or limit > 100:
        raise InvalidArgument(f"Limit {limit} is outside the range of [1, 100]")
    official = automated = None
    min_stars = 0
    for key, values in (filters or {}).items():
        for value in values:
            if key in ("is-official", "is-automated"):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter '{key}={value}'")
                if key == "is-official":
                    official = value.lower() in ("true", "1")
                else:
                    automated = value.lower() in ("true", "1")
            elif key == "stars":
                try:
                    min_stars = max(min_stars, int(value))
                except ValueError:
                    raise InvalidArgument(f"invalid filter 'stars={value}'") from None
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
    first = term.split("/", 1)[0]
    if "/" in term and ("." in first or ":" in first or first == "localhost"):
        host, query = first, term.split("/", 1)[1]
    else:
        host, query = "docker.io", term
    out = []
    for r in open_registry(engine, host).search(query, limit):
        row = {"name": r.get("name") or r.get("repo_name", ""),
               "description": r.get("description") or r.get("short_description") or "",
               "star_count": int(r.get("star_count", r.get("stars", 0)) or 0),
               "is_official": bool(r.get("is_official", r.get("official", False))),
               "is_automated": bool(r.get("is_automated", False))}
        if row["star_count"] < min_stars or (official is not None and row["is_official"] != official) \
                or (automated is not None and row["is_automated"] != automated):
            continue
        out.append(row)
    return out[:limit]


def _mirrors(engine, host: str) -> list[str]:
    mirrors = (engine.config.get("registries.mirrors") or {}).get(host) or []
    return [mirrors] if isinstance(mirrors, str) else list(mirrors)


class PullResult(Record):
    """One pulled reference: its manifest's digest, the Image, and whether nothing new came."""

    REQUIRED = ("ref", "digest", "image", "up_to_date")


def path_transport(name) -> tuple[object, str, str | None] | None:
    """For `TRANSPORT:PATH[:TAG]` naming a registry driver whose location is a path (contrib's
    ``oci:``, as skopeo's), (the driver, PATH, TAG or None); None for an image reference."""
    if not isinstance(name, str) or ":" not in name:
        return None
    prefix, rest = name.split(":", 1)
    if not rest or rest[0].isdigit() or not re.fullmatch(r"[a-z][a-z0-9-]*", prefix):
        return None  # host:port/...
    from berth.core import plugins

    registry = plugins.drivers("registry")
    if prefix not in registry.names():
        return None
    cls = registry.supported(prefix)
    if getattr(cls, "location_kind", "host") != "path":
        return None
    path, tag = rest, None
    if ":" in rest.rsplit("/", 1)[-1]:
        path, tag = rest.rsplit(":", 1)
    if not path or (tag is not None and not re.fullmatch(r"[\w][\w.-]{0,127}", tag)):
        raise InvalidArgument(f"invalid reference format: {name}")
    return cls(path, {}), path, tag


def _pull_from_path(engine, name: str, transport, platform, progress, on_start) -> list[PullResult]:
    """`pull oci:PATH[:TAG]`: the image gets the name it was pushed as, if the transport kept
    one, else localhost/<the directory's name>:TAG."""
    source, path, tag = transport
    tag = tag or refs.DEFAULT_TAG
    full = getattr(source, "full_name", lambda t: None)(tag)
    if not full:
        base = re.sub(r"[^a-z0-9._-]+", "-", os.path.basename(os.path.normpath(path)).lower()).strip("._-")
        full = f"localhost/{base or 'image'}:{tag}"
    ref = refs.parse(full)
    source.get_manifest(ref.name, tag)  # a missing tag: the transport's own words, naming the path
    if on_start:
        on_start(ref)
    with engine.lock("gc", shared=True):
        return [_pull_one(engine, _Named(source, ref.name), ref, parse_platform(platform), progress)]


class _Named:
    """A path transport asked for the image under its full name (as push_to_path stored it), whatever
    repository the pull names."""

    def __init__(self, source, name: str):
        self.source, self.name = source, name
        self.parallel = getattr(source, "parallel", True)

    def get_manifest(self, repository, reference, accept=None):
        return self.source.get_manifest(self.name, reference, accept)

    def __getattr__(self, attr):
        return getattr(self.source, attr)


def pull(engine, name: str | refs.Reference, *, platform: str | None = None, progress: Progress = _no_progress,
         all_tags: bool = False, on_start: Callable[[refs.Reference], None] | None = None,
         auth_file=None, credentials: tuple[str, str] | None = None) -> list[PullResult]:
    """Pull `name` (every tag of its repository with `all_tags`) into the store; `name` may be
    a path transport's `TRANSPORT:PATH[:TAG]` (see path_transport).
    `auth_file`: read credentials from this file only (--authfile); `credentials`:
    (user, password) for the registry instead (the Engine API's X-Registry-Auth)."""
    transport = path_transport(name)
    if transport is not None:
        if all_tags:
            raise InvalidArgument("--all-tags is for registries, not for " + name.split(":", 1)[0])
        return _pull_from_path(engine, name, transport, platform, progress, on_start)
    ref = name if isinstance(name, refs.Reference) else refs.parse(name, default_tag=not all_tags)
    if all_tags and (ref.tag or ref.digest):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    plat = parse_platform(platform)
    sources = [(h, None) for h in _mirrors(engine, ref.registry)] + [(ref.registry, None)]
    last_error: BaseException | None = None
    for i, (host, _) in enumerate(sources):
        mirror = i < len(sources) - 1
        try:
            source = open_registry(engine, host, auth_file=auth_file,
                                   credentials=credentials if host == ref.registry else None)
            if all_tags:
                wanted = [ref.with_tag(t) for t in sorted(source.list_tags(ref.repository))]
            else:
                wanted = [ref]
            results = []
            with engine.lock("gc", shared=True):
                for one in wanted:
                    if on_start:
                        on_start(one)
                    results.append(_pull_one(engine, source, one, plat, progress))
            return results
        except (RegistryError, OSError) as exc:
            if not mirror:
                raise
            log.info("mirror failed, trying the next", mirror=host, error=str(exc))
            last_error = exc
    raise last_error  # pragma: no cover - the loop always returns or raises


def _pull_one(engine, source, ref: refs.Reference, platform, progress: Progress) -> PullResult:
    try:
        doc, data, kind, top_digest = resolve(source, ref.repository, ref.digest or ref.tag, platform)
    except NotFound as exc:
        if "MANIFEST_UNKNOWN" in exc.message or "manifest unknown" in exc.message:
            raise NotFound(f"manifest for {ref.familiar} not found: manifest unknown: manifest unknown") from None
        raise
    before = engine.images.find_id(str(ref))
    have_all = all(engine.content.exists(d["digest"]) for d in [doc["config"]] + doc["layers"])
    if before == doc["config"]["digest"] and have_all:
        progress = _no_progress  # up to date: Docker prints no layer lines
    fetched = fetch(engine, source, ref.repository, doc, tags=[ref] if ref.tag else [],
                    repo_digest=f"{ref.name}@{top_digest}", action="pull", progress=progress)
    up_to_date = fetched.downloaded == 0 and before == fetched.image.id
    return PullResult(ref=ref, digest=top_digest, image=fetched.image, up_to_date=up_to_date)


# --------------------------------------------------------------------------
# sending from the store
# --------------------------------------------------------------------------


def image_manifest(engine, image) -> tuple[bytes, str]:
    """The manifest to send for `image`: its stored one, checked against the store."""
    manifest = dict(image.manifest)
    media_type = manifest.get("mediaType") or OCI_MANIFEST
    manifest.setdefault("mediaType", media_type)
    return json.dumps(manifest, indent=3).encode(), media_type


def send(engine, image, dest, repo: str, *, mount_candidates: Callable[[str], list[str]] = lambda d: [],
         progress: Progress = _no_progress) -> tuple[bytes, str]:
    """Upload `image`'s blobs to `dest` (skipping what it has), then return (manifest bytes, media type).

    Layers first, in parallel, then the config; the caller puts the manifest.
    """
    data, media_type = image_manifest(engine, image)
    doc = json.loads(data)
    content = engine.content
    for desc in [doc["config"]] + doc["layers"]:
        if not content.exists(desc["digest"]):
            raise NotFound(f"blob {desc['digest']} of image {image.short_id} is missing from the content store")

    def upload(desc: dict, is_layer: bool) -> None:
        digest, size = desc["digest"], desc["size"]
        label = short(digest)
        if is_layer:
            progress(label, "Preparing", 0, size)
        if dest.has_blob(repo, digest):
            if is_layer:
                progress(label, "Layer already exists", size, size)
            return
        done = [0]

        def on_read(n: int) -> None:
            done[0] += n
            if is_layer:
                progress(label, "Pushing", done[0], size)

        others = [r for r in mount_candidates(digest) if r != repo]
        with content.open(digest) as f:
            mounted = dest.put_blob(repo, digest, size, _Reader(f, on_read, threading.Event()),
                                    mount_from=others[0] if others else None)
        if is_layer:
            progress(label, f"Mounted from {others[0]}" if mounted is True and others else "Pushed", size, size)

    serial = not getattr(dest, "parallel", True)
    jobs = [(d, True) for d in doc["layers"]]
    if serial:
        for d, is_layer in jobs:
            upload(d, is_layer)
    else:
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="berth-push") as pool:
            for fut in [pool.submit(upload, d, is_layer) for d, is_layer in jobs]:
                fut.result()
    upload(doc["config"], False)
    return data, media_type


def push(engine, name: str, *, progress: Progress = _no_progress, all_tags: bool = False,
         on_start: Callable[[refs.Reference], None] | None = None,
         auth_file=None, credentials: tuple[str, str] | None = None,
         destination: str | None = None) -> list[tuple[refs.Reference, str, int]]:
    """`berth push`: returns (reference, manifest digest, manifest size) for each tag pushed.
    `destination`: a path transport's `TRANSPORT:PATH[:TAG]` to push to instead of the name's
    registry (podman's `push IMAGE DESTINATION`).
    `auth_file`: read credentials from this file only (--authfile); `credentials`:
    (user, password) for the registry instead (the Engine API's X-Registry-Auth)."""
    ref = refs.parse(name, default_tag=not all_tags)
    if ref.digest:
        raise InvalidArgument("cannot push a digest reference")
    if destination is not None:
        transport = path_transport(destination)
        if transport is None:
            raise InvalidArgument(f"invalid destination {destination!r}: TRANSPORT:PATH[:TAG] (e.g. oci:/srv/images:v1)")
        dest, _, tag = transport
        image = _local_image(engine, ref)
        if on_start:
            on_start(ref)
        # the full name (registry included) as the repository: a pull gives the image its name back
        data, media_type = send(engine, image, dest, ref.name, progress=progress)
        digest = dest.put_manifest(ref.name, tag or ref.tag, data, media_type)
        engine.emit("image", "push", image.id, {"name": destination})
        return [(ref.with_tag(tag or ref.tag), digest, len(data))]
    if all_tags:
        rows = engine.store.all("SELECT name FROM tags WHERE name LIKE ? ORDER BY name", (f"{ref.name}:%",))
        wanted = [refs.parse(r["name"]) for r in rows if refs.parse(r["name"]).name == ref.name]
        if not wanted:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    else:
        wanted = [ref]
    dest = open_registry(engine, ref.registry, auth_file=auth_file, credentials=credentials)
    out = []
    for one in wanted:
        image = _local_image(engine, one)
        if on_start:
            on_start(one)
        data, media_type = send(engine, image, dest, one.repository,
                                mount_candidates=lambda d, one=one: _mount_candidates(engine, one, d), progress=progress)
        digest = dest.put_manifest(one.repository, one.tag, data, media_type)
        with engine.store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?, ?)",
                       (f"{one.name}@{digest}", image.id))
        engine.emit("image", "push", image.id, {"name": one.familiar})
        out.append((one, digest, len(data)))
    return out


def _local_image(engine, ref: refs.Reference):
    """The image tagged `ref`, with Docker's words when there is none."""
    image_id = engine.images.find_id(str(ref))
    if image_id is None:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    return engine.images.get(image_id)


def _mount_candidates(engine, ref: refs.Reference, digest: str) -> list[str]:
    """Other repositories of the same registry that hold `digest` (from our repo digests)."""
    out = []
    for row in engine.store.all("SELECT r.name, i.manifest FROM repo_digests r JOIN images i ON i.id = r.image_id"):
        name = row["name"].split("@", 1)[0]
        if digest not in row["manifest"]:
            continue
        try:
            other = refs.parse(name)
        except InvalidArgument:
            continue
        if other.registry == ref.registry and other.repository != ref.repository and other.repository not in out:
            out.append(other.repository)
    return out


# --------------------------------------------------------------------------
# archives
# --------------------------------------------------------------------------


def _archive_transport(fmt: str):
    from berth.core import plugins

    return plugins.drivers("registry").get(fmt)


def load_archive(engine, stream: BinaryIO) -> Iterator[str]:
    """`berth load`: every image of a docker-archive or OCI archive; yields Docker's lines."""
    reader_cls = _archive_transport("docker-archive").Reader
    with engine.lock("gc", shared=True):
        reader = reader_cls(engine.content)
        try:
            results = []
            for entry in reader.read(stream):
                doc, kind = parse_manifest(entry.manifest, entry.media_type)
                if kind in INDEX_TYPES:
                    raise Corrupt("invalid archive: an image entry is an index")
                tags = []
                for name in entry.names:
                    ref = refs.parse(name)
                    if ref.digest or not ref.tag:
                        continue
                    tags.append(ref)
                fetched = fetch(engine, reader, "", doc, tags=tags, action="load", staged=reader.staged)
                results.append((fetched.image, tags))
        except Corrupt as exc:
            _discard(engine, reader.staged)
            if exc.message.startswith("invalid archive"):
                raise
            raise Corrupt(f"invalid archive: {exc.message}") from None
        except BaseException:
            _discard(engine, reader.staged)
            raise
        _discard(engine, reader.staged)  # what no loaded image uses (legacy json files ...)
    for image, tags in results:
        if tags:
            for ref in tags:
                yield f"Loaded image: {ref.familiar}"
        else:
            yield f"Loaded image ID: {image.id}"


def save_archive(engine, names: list[str], out: BinaryIO, fmt: str = "docker-archive") -> None:
    """`berth save`: the named images into one archive of format `fmt`."""
    transport = _archive_transport(fmt)
    chosen: dict[str, list[str]] = {}
    for name in names:
        image = engine.images.get(name)
        entry = chosen.setdefault(image.id, [])
        if engine.images._tag_target(name) == image.id and not refs.ID_RE.match(name):
            ref = refs.parse(name)
            if ref.tag and str(ref) not in entry:
                entry.append(str(ref))
    writer = transport.writer(out)
    for image_id, tags in chosen.items():
        image = engine.images.get(image_id)
        data, media_type = send(engine, image, writer, "")
        writer.put_manifest("", None, data, media_type, names=tags)
        engine.emit("image", "save", image.id, {"name": refs.parse(tags[0]).familiar} if tags else {})
    writer.close()
