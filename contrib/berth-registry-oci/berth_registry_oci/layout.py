"""An OCI image layout directory as an image transport, as skopeo's ``oci:``.

The layout (image-spec, image-layout.md): ``oci-layout``, ``index.json`` and
``blobs/sha256/<hex>``. Each tag is a descriptor of index.json carrying
``org.opencontainers.image.ref.name`` (the tag, as skopeo writes it) and,
written by berth, ``io.containerd.image.name`` (``REPOSITORY:TAG``), so one
layout can hold several repositories and berth gives a pulled image its
name back. A layout written by skopeo, without the second annotation, is
found by its tag alone.

Blobs are written under a temporary name, checked against their digest and
renamed; index.json is replaced atomically under a lock, so a killed push
leaves at most an unreferenced blob.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import BinaryIO

from berth.core.driverkit import locked, write_atomic
from berth.core.drivers import Registry
from berth.core.errors import Corrupt, InvalidArgument, NotFound
from berth.core.oci.content import check_digest

REF_NAME = "org.opencontainers.image.ref.name"
FULL_NAME = "io.containerd.image.name"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_CHUNK = 1 << 20


class OCILayout(Registry):
    """Images in an OCI image layout directory (``oci:PATH[:TAG]``)."""

    name = "oci"
    location_kind = "path"

    def __init__(self, location: str, options=None):
        super().__init__(location, options)
        self.root = Path(location)

    # -- reading -------------------------------------------------------------------------

    def _index(self) -> dict:
        try:
            doc = json.loads((self.root / "index.json").read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except ValueError:
            raise Corrupt(f"{self.root}/index.json is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
            raise Corrupt(f"{self.root}/index.json is not an OCI image index")
        doc.setdefault("manifests", [])
        return doc

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest).split(":", 1)[1]

    def _tagged(self, repository: str, tag: str) -> dict | None:
        """The descriptor of repository:tag; a descriptor with that tag and no repository (skopeo's)
        when it is the only one."""
        manifests = [d for d in self._index()["manifests"] if isinstance(d, dict)]
        for d in manifests:
            notes = d.get("annotations") or {}
            if notes.get(REF_NAME) == tag and notes.get(FULL_NAME) == f"{repository}:{tag}":
                return d
        loose = [d for d in manifests if (d.get("annotations") or {}).get(REF_NAME) == tag]
        return loose[0] if len(loose) == 1 else None

    def full_name(self, tag: str) -> str | None:
        """The REPOSITORY:TAG a descriptor of `tag` was pushed as, if berth wrote it."""
        d = self._tagged("", tag)
        return (d.get("annotations") or {}).get(FULL_NAME) if d else None

    def get_manifest(self, repository: str, reference: str, accept=None) -> tuple[bytes, str, str]:
        if reference.startswith("sha256:"):
            digest = check_digest(reference)
            media_type = next((d.get("mediaType") for d in self._index()["manifests"]
                               if isinstance(d, dict) and d.get("digest") == digest), None)
        else:
            if not self.root.is_dir():
                raise NotFound(f"manifest unknown: {self.root} is not a directory")
            d = self._tagged(repository, reference)
            if d is None:
                raise NotFound(f"manifest unknown: no image tagged {reference!r} in the OCI layout {self.root}")
            digest, media_type = check_digest(d.get("digest")), d.get("mediaType")
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"manifest unknown: {digest}") from None
        if len(data) > self.MANIFEST_MAX:
            raise Corrupt(f"manifest {digest} is larger than {self.MANIFEST_MAX} bytes")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise Corrupt(f"manifest {digest} does not match its digest")
        try:
            declared = json.loads(data).get("mediaType")
        except (ValueError, AttributeError):
            raise Corrupt(f"manifest {digest} is not JSON") from None
        if media_type and declared and media_type != declared:
            raise Corrupt(f"manifest {digest}: index.json says {media_type}, the manifest {declared}")
        return data, media_type or declared or "application/vnd.oci.image.manifest.v1+json", digest

    def get_blob(self, repository: str, digest: str) -> BinaryIO:
        try:
            return _Verified(open(self._blob(digest), "rb"), digest)
        except FileNotFoundError:
            raise NotFound(f"blob unknown: {digest}") from None

    def has_blob(self, repository: str, digest: str) -> bool:
        return self._blob(digest).is_file()

    def list_tags(self, repository: str) -> list[str]:
        tags = [(d.get("annotations") or {}).get(REF_NAME) for d in self._index()["manifests"]
                if (d.get("annotations") or {}).get(FULL_NAME, "").rpartition(":")[0] == repository]
        if not tags:
            raise NotFound(f"name unknown: {repository} is not in the OCI layout {self.root}")
        return [t for t in tags if t]

    def catalog(self) -> list[str]:
        names = {(d.get("annotations") or {}).get(FULL_NAME, "").rpartition(":")[0]
                 for d in self._index()["manifests"]}
        return sorted(n for n in names if n)

    # -- writing -------------------------------------------------------------------------

    def _prepare(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            write_atomic(self.root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', mode=0o644)

    def put_blob(self, repository: str, digest: str, size: int, stream: BinaryIO, mount_from=None) -> bool:
        target = self._blob(digest)
        self._prepare()
        if target.is_file():
            return False
        tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
        h = hashlib.sha256()
        written = 0
        try:
            with open(tmp, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    written += len(chunk)
                    out.write(chunk)
            if "sha256:" + h.hexdigest() != digest or written != size:
                raise Corrupt(f"blob {digest}: the bytes sent do not match its digest or size")
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return False

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise InvalidArgument(f"manifest digest {digest} is not {reference}")
        self.put_blob(repository, digest, len(data), _BytesStream(data))
        with locked(self.root / ".index.lock"):
            doc = self._index()
            keep = []
            for d in doc["manifests"]:
                notes = (d.get("annotations") or {}) if isinstance(d, dict) else {}
                if notes.get(REF_NAME) == reference and notes.get(FULL_NAME) in (None, f"{repository}:{reference}"):
                    continue  # the tag moves to the new manifest
                keep.append(d)
            entry = {"mediaType": media_type, "digest": digest, "size": len(data)}
            if not reference.startswith("sha256:"):
                entry["annotations"] = {REF_NAME: reference, FULL_NAME: f"{repository}:{reference}"}
            doc["manifests"] = keep + [entry]
            write_atomic(self.root / "index.json", json.dumps(doc, separators=(",", ":")).encode(), mode=0o644)
        return digest


class _BytesStream:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


class _Verified:
    """A blob file that raises Corrupt at its end when its bytes do not hash to `digest`."""

    def __init__(self, f: BinaryIO, digest: str):
        self.f, self.digest, self.h = f, digest, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        self.h.update(chunk)
        if not chunk or n < 0:
            if "sha256:" + self.h.hexdigest() != self.digest:
                raise Corrupt(f"blob {self.digest} does not match its digest")
        return chunk

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
