"""Image archives as transports: ``docker-archive`` and ``oci-archive``.

Reading accepts what `docker save`, `podman save`, `skopeo copy ...
docker-archive:` and `oci-archive:` write: a tar (plain, gzip or zstd) with
either ``manifest.json`` (Config, RepoTags, Layers: ``<id>/layer.tar``,
``<hex>.tar`` or ``blobs/sha256/<hex>``) or an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``). The archive is read
once, as a stream: every file member goes straight into a staging content
store (verified against its name when the name is a digest), so a layer is
never held in memory and stdin works. The caller deletes what it staged and
did not use (`ArchiveReader.staged`).

Writing produces a docker-archive (``manifest.json`` + ``blobs/sha256/...``
+ ``index.json``/``oci-layout``, which `skopeo`, `podman load` and `docker
load` read) or an oci-archive (an OCI image layout in a tar).

Both sides speak the registry transport's vocabulary (get_manifest,
get_blob, has_blob, put_blob, put_manifest), so berth.core.images.transfer copies
images between an archive and the store the same way it does with a registry.
Every name, digest and descriptor in an archive is untrusted input.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import time
from collections import namedtuple
from typing import BinaryIO

from berth.core.errors import Corrupt, InvalidArgument, NotFound
from berth.core.oci import reference as refs
from berth.core.oci.content import check_digest, sha256_bytes
from berth.core.oci.mediatypes import DOCKER_LIST, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, layer_media_type
from berth.core.oci.platform import choose_platform

# Files read into memory; anything larger is refused (an oversized manifest).
METADATA_FILES = {"manifest.json", "index.json", "oci-layout", "repositories"}
METADATA_MAX = 8 << 20


def _member_path(name: str) -> str:
    """A member's normalized path; names with `..` or absolute ones are refused."""
    if name.startswith("/") or not name:
        raise Corrupt(f"invalid archive: member {name!r} has an absolute or empty path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        raise Corrupt(f"invalid archive: member {name!r} points outside the archive")
    return "/".join(parts)


def _link_target(member: tarfile.TarInfo, path: str) -> str:
    """Where a symlink or hard link member points, as an archive path."""
    target = member.linkname
    if member.issym() and not target.startswith("/"):
        target = posixpath.join(posixpath.dirname(path), target)
    parts: list[str] = []
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise Corrupt(f"invalid archive: link {path!r} points outside the archive")
            parts.pop()
        else:
            parts.append(comp)
    return "/".join(parts)


def _read_errors() -> tuple[type[BaseException], ...]:
    import zlib

    errors: list[type[BaseException]] = [EOFError, OSError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


def _json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Corrupt(f"invalid archive: {what} is not valid JSON: {exc}") from None


def _blob_digest(path: str) -> str | None:
    """``blobs/sha256/<hex>`` names its own digest."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return check_digest(f"{parts[1]}:{parts[2]}")
    return None


class ArchiveImage(namedtuple("ArchiveImage", "manifest media_type digest names")):
    """One image found in an archive, as a manifest the store can fetch;
    `names`: references as written in the archive ("busybox:latest")."""

    __slots__ = ()


class ArchiveReader:
    """The read side of an archive, staged into a content store.

    `images` lists the images in archive order. `staged` holds the digests
    this reader added to the store (the caller removes the unused ones).
    """

    def __init__(self, staging, platform: tuple[str, str, str | None] | None = None):
        self.staging = staging
        self.platform = platform
        self.staged: set[str] = set()
        self.images: list[ArchiveImage] = []
        self._files: dict[str, tuple[str, int]] = {}  # path -> (digest, size)
        self._links: dict[str, str] = {}
        self._meta: dict[str, bytes] = {}
        self._manifests: dict[str, ArchiveImage] = {}

    def read(self, stream: BinaryIO) -> list[ArchiveImage]:
        """Read the whole archive (plain, gzip or zstd); return its images.

        On an error, what was staged so far is in `staged` for the caller to remove.
        """
        from berth.core.oci.archive import decompressed

        try:
            with tarfile.open(fileobj=decompressed(stream), mode="r|") as tar:
                for member in tar:
                    self._read_member(tar, member)
        except tarfile.TarError as exc:
            raise Corrupt(f"invalid archive: {exc}") from None
        except _read_errors() as exc:
            raise Corrupt(f"invalid archive: truncated or unreadable: {exc}") from None
        if "manifest.json" in self._meta:
            self.images = self._docker_images()
        elif "index.json" in self._meta:
            self.images = self._oci_images()
        else:
            raise Corrupt("invalid archive: it has neither manifest.json nor index.json "
                          "(not a docker-archive or an OCI image layout)")
        for image in self.images:
            self._manifests[image.digest] = image
        return self.images

    # -- reading the tar ---------------------------------------------------------

    def _read_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = _member_path(member.name)
        if member.isdir():
            return
        if member.issym() or member.islnk():
            self._links[path] = _link_target(member, path)
            return
        if not member.isfile():
            return  # devices, fifos: nothing an image archive needs
        f = tar.extractfile(member)
        if path in METADATA_FILES:
            if member.size > METADATA_MAX:
                raise Corrupt(f"invalid archive: {path} is {member.size} bytes, over the {METADATA_MAX} limit")
            self._meta[path] = f.read()
            return
        try:
            digest, size = self.staging.put(f, expected=_blob_digest(path), expected_size=member.size)
        except Corrupt as exc:
            raise Corrupt(f"invalid archive: {path}: {exc}") from None
        self.staged.add(digest)  # the caller removes it again unless an image uses it
        self._files[path] = (digest, size)

    def _file(self, path: str, what: str) -> tuple[str, int]:
        """(digest, size) of the file at archive path `path`, following links."""
        try:
            path = _member_path(path)
        except Corrupt:
            raise Corrupt(f"invalid archive: {what} {path!r} points outside the archive") from None
        for _ in range(16):
            if path in self._files:
                return self._files[path]
            if path not in self._links:
                break
            path = self._links[path]
        raise Corrupt(f"invalid archive: {what} {path!r} is not in the archive")

    # -- docker-archive --------------------------------------------------------------

    def _docker_images(self) -> list[ArchiveImage]:
        entries = _json(self._meta["manifest.json"], "manifest.json")
        if not isinstance(entries, list):
            raise Corrupt("invalid archive: manifest.json is not a list")
        out = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                    or not isinstance(entry.get("Layers"), list):
                raise Corrupt("invalid archive: a manifest.json entry lacks Config or Layers")
            config_digest, config_size = self._file(entry["Config"], "config")
            layers = []
            for name in entry["Layers"]:
                if not isinstance(name, str):
                    raise Corrupt("invalid archive: a layer name in manifest.json is not a string")
                digest, size = self._file(name, "layer")
                with self.staging.open(digest) as f:
                    media_type = layer_media_type(f.read(4))
                layers.append({"mediaType": media_type, "digest": digest, "size": size})
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": layers,
            }
            data = json.dumps(manifest, separators=(",", ":")).encode()
            names = entry.get("RepoTags") or []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise Corrupt("invalid archive: RepoTags in manifest.json is not a list of names")
            out.append(ArchiveImage(data, OCI_MANIFEST, sha256_bytes(data), names))
        return out

    # -- OCI image layout ---------------------------------------------------------

    def _oci_images(self) -> list[ArchiveImage]:
        layout = self._meta.get("oci-layout")
        if layout is not None:
            version = _json(layout, "oci-layout")
            if not isinstance(version, dict) or version.get("imageLayoutVersion") != "1.0.0":
                raise Corrupt("invalid archive: unsupported oci-layout version")
        index = _json(self._meta["index.json"], "index.json")
        out = []
        for desc in _descriptors(index, "index.json"):
            names = _names_from_annotations(desc.get("annotations") or {})
            data, media_type, digest = self._resolve(desc)
            out.append(ArchiveImage(data, media_type, digest, names))
        return out

    def _resolve(self, desc: dict, depth: int = 0) -> tuple[bytes, str, str]:
        """A descriptor's image manifest; an index resolves to this platform."""
        digest = check_digest(desc.get("digest"))
        data = self.blob_bytes(digest, limit=METADATA_MAX)
        doc = _json(data, f"manifest {digest}")
        media_type = doc.get("mediaType") or desc.get("mediaType") or ""
        if media_type in (OCI_INDEX, DOCKER_LIST) or ("manifests" in doc and "layers" not in doc):
            if depth > 3:
                raise Corrupt("invalid archive: indexes nested too deep")

            return self._resolve(choose_platform(doc, self.platform), depth + 1)
        return data, media_type or OCI_MANIFEST, digest

    # -- the registry vocabulary ------------------------------------------------------

    def blob_bytes(self, digest: str, limit: int) -> bytes:
        check_digest(digest)
        if digest not in self.staged and not self.staging.exists(digest):
            raise Corrupt(f"invalid archive: blob {digest} is not in the archive")
        with self.staging.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise Corrupt(f"invalid archive: {digest} is larger than {limit} bytes")
        return data

    def get_manifest(self, repo: str, ref: str, accept=None) -> tuple[bytes, str, str]:
        if ref in self._manifests:
            image = self._manifests[ref]
            return image.manifest, image.media_type, image.digest
        raise NotFound(f"manifest unknown: {ref} is not in the archive")

    def get_blob(self, repo: str, digest: str) -> BinaryIO:
        check_digest(digest)
        return self.staging.open(digest)

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.staging.exists(check_digest(digest))


def _descriptors(doc, what: str) -> list[dict]:
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(d, dict) for d in manifests):
        raise Corrupt(f"invalid archive: {what} has no list of manifests")
    return manifests


def _names_from_annotations(annotations: dict) -> list[str]:
    """containerd's full name, else ref.name when it is a whole reference (a bare tag names nothing)."""
    name = annotations.get("io.containerd.image.name")
    if isinstance(name, str) and name:
        return [name]
    ref_name = annotations.get("org.opencontainers.image.ref.name")
    if isinstance(ref_name, str) and ("/" in ref_name or ":" in ref_name):
        return [ref_name]
    return []


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------


class ArchiveWriter:
    """The write side: blobs stream into a tar; the index files come last.

    ``fmt`` is ``docker-archive`` (manifest.json with Config, RepoTags,
    Layers, plus index.json/oci-layout) or ``oci-archive`` (an OCI layout).
    """

    parallel = False  # one tar stream: blobs are written one after another

    def __init__(self, out: BinaryIO, fmt: str = "docker-archive"):
        if fmt not in ("docker-archive", "oci-archive"):
            raise InvalidArgument(f"unknown archive format {fmt!r} (docker-archive or oci-archive)")
        self.fmt = fmt
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self._written: set[str] = set()
        self._docker: list[dict] = []
        self._index: list[dict] = []
        self._mtime = int(time.time())
        self._add_dir("blobs")
        self._add_dir("blobs/sha256")

    def _add_dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = self._mtime
        self.tar.addfile(info)

    def _add_file(self, name: str, size: int, stream: BinaryIO) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = self._mtime
        self.tar.addfile(info, stream)

    # -- the registry vocabulary ------------------------------------------------------

    def has_blob(self, repo: str, digest: str) -> bool:
        return digest in self._written

    def put_blob(self, repo: str, digest: str, size: int, stream: BinaryIO, mount_from=None) -> None:
        check_digest(digest)
        if digest in self._written:
            return
        self._add_file("blobs/sha256/" + digest.split(":", 1)[1], size, stream)
        self._written.add(digest)

    def put_manifest(self, repo: str, ref: str | None, data: bytes, media_type: str,
                     names: list[str] | None = None) -> str:
        """Store a manifest; `names` are the references the image is saved under."""
        digest = sha256_bytes(data)
        self.put_blob(repo, digest, len(data), io.BytesIO(data))
        manifest = _json(data, "manifest")
        names = list(names or [])
        entry = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if names:
            ref = refs.parse(names[0])
            entry["annotations"] = {"io.containerd.image.name": str(ref),
                                    "org.opencontainers.image.ref.name": ref.tag or "latest"}
        self._index.append(entry)
        blob = lambda d: "blobs/sha256/" + d["digest"].split(":", 1)[1]  # noqa: E731
        self._docker.append({
            "Config": blob(manifest["config"]),
            "RepoTags": [refs.parse(n).familiar for n in names] or None,
            "Layers": [blob(layer) for layer in manifest["layers"]],
        })
        return digest

    def close(self) -> None:
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                           "manifests": self._index}).encode()}
        if self.fmt == "docker-archive":
            files["manifest.json"] = json.dumps(self._docker).encode()
        for name, data in files.items():
            self._add_file(name, len(data), io.BytesIO(data))
        self.tar.close()


class DockerArchive:
    """Registration handle for the ``docker-archive`` transport."""

    name = "docker-archive"
    Reader = ArchiveReader

    @staticmethod
    def writer(out: BinaryIO) -> ArchiveWriter:
        return ArchiveWriter(out, "docker-archive")

    @classmethod
    def unsupported_reason(cls) -> str | None:
        return None


class OCIArchive(DockerArchive):
    """Registration handle for the ``oci-archive`` transport (reading detects the format)."""

    name = "oci-archive"

    @staticmethod
    def writer(out: BinaryIO) -> ArchiveWriter:
        return ArchiveWriter(out, "oci-archive")
