"""Images: an OCI config, a manifest, and a chain of read-only layers.

Each layer's parent is the one below it; a base layer has none. A layer is
named in the store by its OCI chain ID (the whole stack up to it), so two
images that share a base share its layers; the storage driver knows it by a
random cache ID, so a layer is extracted under a name nobody uses yet and
only the final database row makes it real (a crash mid-extract leaves an
orphan the next run deletes, never a half layer in use).

Blobs (configs, manifests, compressed layers) live in the content store; a
layer missing from the current storage driver is extracted again from its
blob, so switching drivers never loses an image.
"""

from __future__ import annotations

import contextlib
import json
from collections import namedtuple
from collections.abc import Callable, Iterable

from berth.core.errors import BerthError, Conflict, Corrupt, InvalidArgument, NotFound
from berth.core.images import incomplete
from berth.core.oci import reference as refs
from berth.core.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST, layer_media_type
from berth.core.oci.platform import arch
from berth.core.plumbing.ids import random_hex
from berth.core.plumbing.records import Record
from berth.core.plumbing.store import dumps, loads
from berth.core.plumbing.units import now_iso

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import BinaryIO


# Layers a pull fills at once where the storage driver allows it (inflating,
# hashing and writing release the GIL).
PARALLEL_EXTRACT = 4


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    from berth.core.oci.content import sha256_bytes

    out: list[str] = []
    for diff_id in diff_ids:
        out.append(sha256_bytes(f"{out[-1]} {diff_id}".encode()) if out else diff_id)
    return out


class Layer(namedtuple("Layer", "digest size media_type diff_id")):
    """One layer of an image: digest and size of the blob as stored
    (compressed or not), its media type, and the diff_id of the uncompressed tar.
    (Named tuples and records here, not dataclasses: see berth.core.plumbing.records.)"""

    __slots__ = ()


class Image(Record):
    """An image in the store. tags and digests are fully qualified
    (docker.io/library/busybox:latest); problems, what a damaged store lacks."""

    REQUIRED = ("id", "config", "manifest", "diff_ids", "created", "size", "parent", "tags", "digests")
    FIELDS = {"problems": []}

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @property
    def top_layer(self) -> str | None:
        ids = self.chain_ids
        return ids[-1] if ids else None

    @property
    def repo_tags(self) -> list[str]:
        return [refs.parse(t).familiar for t in self.tags]

    @property
    def repo_digests(self) -> list[str]:
        return [refs.parse(d).familiar for d in self.digests]


class HashingReader:
    """Wraps a stream; hashes what is read through it."""

    def __init__(self, f: BinaryIO):
        import hashlib

        self.f = f
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hash.update(data)
        return data

    def readinto(self, buf) -> int:
        n = self.f.readinto(buf) or 0
        self.hash.update(memoryview(buf)[:n])
        return n

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return "sha256:" + self.hash.hexdigest()


class _NewLayer(namedtuple("_NewLayer", "index chain_id diff_id blob parent_chain cache_id")):
    """A layer ensure_layers created in the storage driver, still to be filled."""

    __slots__ = ()


class _LayerFiller:
    """Fills created layers from their blobs and records them in chain order;
    discards the ones not recorded when the pull fails."""

    def __init__(self, images: "ImageService", driver, blob_ready: Callable[[int], None], sizes: list[int]):
        self.images, self.driver, self.blob_ready, self.sizes = images, driver, blob_ready, sizes
        self.created: list[_NewLayer] = []
        self.pending: list[_NewLayer] = []

    def add(self, layer: _NewLayer) -> None:
        self.created.append(layer)
        self.pending.append(layer)

    def fill(self, workers: int) -> None:
        """Fill the pending layers (in forked children, side by side, when
        `workers` > 1), then record them."""
        todo, self.pending = self.pending, []
        if workers > 1 and len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="berth-extract") as pool:
                futures = [pool.submit(self._fill_one, layer, True) for layer in todo]
                sizes = [f.result() for f in futures]  # the with-block waits for every one, failed or not
        else:
            sizes = [self._fill_one(layer, False) for layer in todo]
        for layer, size in zip(todo, sizes):
            self.images._record_layer(layer, size)
            self.sizes[layer.index] = size
            self.created.remove(layer)

    def _fill_one(self, layer: _NewLayer, in_child: bool) -> int:
        self.blob_ready(layer.index)
        fill = self.images._fill_in_child if in_child else self.images._fill
        return fill(self.driver, layer.cache_id, layer.diff_id, layer.blob)

    def discard(self) -> None:
        """Remove every created layer not recorded yet."""
        for layer in self.created:
            self.driver.remove(layer.cache_id)
            incomplete.unmark(self.images.engine, layer.cache_id)
        self.created = []


class ImageService:
    def __init__(self, engine):
        self.engine = engine

    @property
    def store(self):
        return self.engine.store

    # -- lookup ------------------------------------------------------------------

    def _load(self, image_id: str, strict: bool = False) -> Image:
        """The image; a config blob missing or damaged on disk is one of its
        `problems` (it stays listable and removable), or with `strict` a damaged one raises Corrupt."""
        row = self.store.one("SELECT * FROM images WHERE id = ?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        problems = []
        try:
            config = json.loads(self.engine.content.read(image_id))
        except NotFound:  # deleted by hand: still listable and removable
            config = {"rootfs": {"type": "layers", "diff_ids": loads(row["diff_ids"])}}
            problems.append("its config blob is missing from the content store")
        except Corrupt as exc:
            if strict:
                raise
            config = {"rootfs": {"type": "layers", "diff_ids": loads(row["diff_ids"])}}
            problems.append(str(exc))
        tags = [r["name"] for r in self.store.all("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]
        digests = [r["name"] for r in self.store.all("SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name", (image_id,))]
        return Image(
            id=row["id"], config=config, manifest=loads(row["manifest"]), diff_ids=loads(row["diff_ids"]),
            created=row["created"], size=row["size"], parent=row["parent"], tags=tags, digests=digests,
            problems=problems,
        )

    def find_id(self, name: str) -> str | None:
        """Image ID for a reference, a repo digest, or a full or short ID.

        A tag wins over an ID prefix of the same spelling, as in Docker.
        """
        tagged = self._tag_target(name)
        if tagged or not refs.ID_RE.match(name):
            return tagged
        hexpart = name.split(":", 1)[-1]
        rows = self.store.all("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{hexpart}%",))
        if len(rows) > 1:
            raise InvalidArgument(f"ambiguous image ID {name}: it matches {len(rows)} images")
        return rows[0]["id"] if rows else None

    def _tag_target(self, name: str) -> str | None:
        try:
            ref = refs.parse(name)
        except InvalidArgument:
            return None
        if ref.digest:
            row = self.store.one("SELECT image_id FROM repo_digests WHERE name = ?", (f"{ref.name}@{ref.digest}",))
        else:
            row = self.store.one("SELECT image_id FROM tags WHERE name = ?", (str(ref),))
        return row[0] if row else None

    def get(self, name: str) -> Image:
        image_id = self.find_id(name)
        if image_id is None:
            raise NotFound(f"No such image: {_familiar_or_raw(name)}")
        return self._load(image_id, strict=True)

    def all(self) -> list[Image]:
        return [self._load(r["id"]) for r in self.store.all("SELECT id FROM images ORDER BY stored DESC, id")]

    def children(self, image_id: str | None) -> list[str]:
        """IDs of the images whose parent is `image_id` (None: those without one), newest first."""
        if image_id is None:
            return [r["id"] for r in self.store.all("SELECT id FROM images WHERE parent IS NULL ORDER BY stored DESC")]
        return [r["id"] for r in self.store.all("SELECT id FROM images WHERE parent = ? ORDER BY stored DESC",
                                                (image_id,))]

    # -- storing -----------------------------------------------------------------

    def register(
        self,
        config_bytes: bytes,
        layers: list[Layer],
        *,
        tags: Iterable[refs.Reference] = (),
        repo_digest: str | None = None,
        parent: str | None = None,
        action: str,
        manifest: dict | None = None,
    ) -> Image:
        """Enter an image whose blobs are already in the content store.

        Layers are extracted into the storage driver first; the image row and
        its tags come last, in one transaction.
        """
        config = json.loads(config_bytes)
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        if [layer.diff_id for layer in layers] != diff_ids:
            raise Corrupt("image config's rootfs.diff_ids do not match its layers")
        from berth.core.oci.content import sha256_bytes

        image_id = sha256_bytes(config_bytes)
        if manifest is None:
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config_bytes)},
                "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size} for l in layers],
            }
        sizes = self.ensure_layers(diff_ids, [l.digest for l in layers])
        self.engine.content.put_bytes(config_bytes, image_id)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (id, manifest, diff_ids, created, size, parent, stored) VALUES (?,?,?,?,?,?,?)",
                (image_id, dumps(manifest), dumps(diff_ids), config.get("created") or now_iso(), sum(sizes), parent, now_iso()),
            )
            for ref in tags:
                self._set_tag(db, ref, image_id)
            if repo_digest:
                db.execute("INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?, ?)", (repo_digest, image_id))
        image = self._load(image_id)
        self.engine.emit("image", action, image_id, _image_attrs(image))
        self.engine.hook("image_stored", image=image, action=action)
        return image

    def ensure_layers(self, diff_ids: list[str], blob_digests: list[str],
                      blob_ready: Callable[[int], None] = lambda index: None) -> list[int]:
        """Make sure every layer of the chain is in the current storage driver; return sizes.

        `blob_ready(i)` returns once layer i's blob is in the content store:
        a pull extracts layers while later ones still download. Missing
        layers are created in chain order under their locks; a driver with
        `independent_layers` then fills them side by side.
        """
        driver = self.engine.storage
        name = self.engine.storage_driver_name
        sizes: list[int] = [0] * len(diff_ids)
        filler = _LayerFiller(self, driver, blob_ready, sizes)
        locked: list[str] = []  # chain IDs whose lock this call took
        with contextlib.ExitStack() as held:
            try:
                parent_chain: str | None = None
                parent_cache: str | None = None
                for index, (diff_id, chain_id, blob) in enumerate(zip(diff_ids, chain_ids(diff_ids), blob_digests)):
                    row = self._layer_row(name, chain_id)
                    if row is None or not driver.exists(row["cache_id"]):
                        held.enter_context(self.engine.lock(f"layer-{chain_id.split(':')[1]}"))
                        locked.append(chain_id)
                        row = self._layer_row(name, chain_id)
                    if row is not None and driver.exists(row["cache_id"]):
                        sizes[index] = row["size"]
                        cache_id = row["cache_id"]
                    else:
                        cache_id = random_hex(32)
                        if not driver.independent_layers:  # the child's create copies its parent: fill it first
                            filler.fill(workers=1)
                        incomplete.mark(self.engine, cache_id, chain_id)  # until recorded: a kill leaves it marked
                        driver.create(cache_id, parent_cache)
                        filler.add(_NewLayer(index, chain_id, diff_id, blob, parent_chain, cache_id))
                    parent_chain, parent_cache = chain_id, cache_id
                filler.fill(workers=PARALLEL_EXTRACT)
            except BaseException:
                filler.discard()
                for chain_id in locked:  # held, and guarding no layer: lock files must not pile up
                    if not self.store.one("SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)):
                        self.engine.forget_lock(f"layer-{chain_id.split(':')[1]}")
                raise
        return sizes

    def _layer_row(self, driver_name: str, chain_id: str):
        return self.store.one("SELECT cache_id, size FROM layers WHERE driver = ? AND chain_id = ?",
                              (driver_name, chain_id))

    def _record_layer(self, layer: "_NewLayer", size: int) -> None:
        name = self.engine.storage_driver_name
        with self.store.transaction() as db:
            db.execute("DELETE FROM layers WHERE driver = ? AND chain_id = ?", (name, layer.chain_id))
            db.execute(
                "INSERT INTO layers (driver, chain_id, cache_id, diff_id, parent, size) VALUES (?,?,?,?,?,?)",
                (name, layer.chain_id, layer.cache_id, layer.diff_id, layer.parent_chain, size),
            )
        incomplete.unmark(self.engine, layer.cache_id)

    def _fill_in_child(self, driver, cache_id: str, diff_id: str, blob: str) -> int:
        """_fill in a forked child, which has a GIL of its own: in threads, a
        layer of many small files (a syscall each) starves behind the others'
        Python work, and tar parsing gets one core only."""
        import berth.core.oci.archive  # noqa: F401 - imported before the fork, not in each child
        from berth.core.plumbing.forked import Forked

        def fill(_) -> int:
            try:
                return self._fill(driver, cache_id, diff_id, blob)
            except OSError as exc:  # "no space left on device", as Go words it
                reason = exc.strerror[:1].lower() + exc.strerror[1:] if exc.strerror else str(exc)
                raise BerthError(f"layer {blob}: {reason}") from None

        return int(Forked(lambda: None, fill).send())

    def _fill(self, driver, cache_id: str, diff_id: str, blob: str) -> int:
        """apply_diff of `blob` into the created layer `cache_id`, checked against `diff_id`."""
        from berth.core.oci.archive import decompressed

        with self.engine.content.open(blob) as f:
            reader = HashingReader(decompressed(f))
            size = driver.apply_diff(cache_id, reader)
            got = reader.drain()
        if got != diff_id:
            raise Corrupt(f"layer {blob}: uncompressed content is {got}, the image config says {diff_id}")
        return size

    def top_cache_id(self, image: Image) -> str | None:
        """The current storage driver's cache ID of `image`'s top layer (None for an empty image).

        A layer the driver lacks (the image came in under another storage driver) is
        extracted again from the content store, so switching drivers loses nothing.
        """
        if not image.top_layer:
            return None
        try:
            return self.layer_cache_id(image.top_layer)
        except NotFound:
            pass
        with self.engine.lock("gc", shared=True):
            self.ensure_layers(image.diff_ids, [layer["digest"] for layer in image.manifest.get("layers", [])])
        return self.layer_cache_id(image.top_layer)

    def layer_cache_id(self, chain_id: str) -> str:
        row = self.store.one(
            "SELECT cache_id FROM layers WHERE driver = ? AND chain_id = ?", (self.engine.storage_driver_name, chain_id)
        )
        if row is None:
            raise NotFound(f"layer {chain_id} is not in the {self.engine.storage_driver_name} driver")
        return row["cache_id"]

    def _set_tag(self, db, ref: refs.Reference, image_id: str) -> None:
        db.execute("INSERT OR REPLACE INTO tags (name, image_id) VALUES (?, ?)", (str(ref), image_id))

    def import_tarball(self, stream: BinaryIO, ref: refs.Reference | None, message: str = "",
                       changes: dict | None = None, source: str = "-") -> Image:
        """`berth import`: a root filesystem tarball becomes a one-layer base image."""
        with self.engine.lock("gc", shared=True):  # our blob is unreferenced until the row lands
            return self._import_tarball(stream, ref, message, changes, source)

    def _import_tarball(self, stream, ref, message, changes, source) -> Image:
        from berth.core.oci.archive import decompressed

        digest, size = self.engine.content.put(stream)
        with self.engine.content.open(digest) as f:
            media_type = layer_media_type(f.read(4))
            f.seek(0)
            try:
                diff_id = HashingReader(decompressed(f)).drain()
            except Exception as exc:
                raise Corrupt(f"{source}: not a tar archive or a broken one: {exc}") from None
        created = now_iso()
        config = {
            "architecture": arch(),
            "os": "linux",
            "created": created,
            "config": dict(changes or {}),
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "created_by": "", "comment": message or f"Imported from {source}"}],
        }
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        try:
            return self.register(config_bytes, [Layer(digest, size, media_type, diff_id)],
                                 tags=[ref] if ref else [], action="import")
        except BaseException:
            if not self._blob_in_use(digest):
                self.engine.content.delete(digest)
            raise

    # -- tags --------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        image = self.get(source)
        ref = refs.parse(target)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        with self.store.transaction() as db:
            self._set_tag(db, ref, image.id)
        self.engine.emit("image", "tag", image.id, {"name": ref.familiar})

    def untag(self, name: str) -> str:
        ref = refs.parse(name)
        with self.store.transaction() as db:
            row = db.execute("SELECT image_id FROM tags WHERE name = ?", (str(ref),)).fetchone()
            if row is None:
                raise NotFound(f"No such image: {ref.familiar}")
            db.execute("DELETE FROM tags WHERE name = ?", (str(ref),))
        self.engine.emit("image", "untag", row[0], {"name": ref.familiar})
        return row[0]

    # -- removal -----------------------------------------------------------------

    def remove(self, name: str, force: bool = False, in_use_by=None) -> list[tuple[str, str]]:
        """`berth rmi`: returns ("Untagged"|"Deleted", what) lines as Docker prints them.

        `in_use_by(image_id)` names a container using the image, or None.
        """
        image_id = self.find_id(name)
        if image_id is None:
            raise NotFound(f"No such image: {_familiar_or_raw(name)}")
        short = image_id.split(":")[1][:12]
        tags = [r["name"] for r in self.store.all("SELECT name FROM tags WHERE image_id = ?", (image_id,))]
        digests = [r["name"] for r in self.store.all("SELECT name FROM repo_digests WHERE image_id = ?", (image_id,))]
        named = self._tag_target(name) == image_id  # by reference, not by ID
        if named:
            doomed = _references_going_with(refs.parse(name), tags, digests)
            if [r for r in tags + digests if r not in doomed]:  # other references keep the image
                return self._drop_references(image_id, doomed)
        user = in_use_by(image_id) if in_use_by else None
        if user and not force:
            if named:
                raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force) - '
                               f"container {user[:12]} is using its referenced image {short}")
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is being used by container {user[:12]}")
        if not named and len(tags) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
        if self.children(image_id):
            raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has dependent child images")
        out = self._drop_references(image_id, tags + digests)
        if user:  # forced while a container uses it: as Docker, keep the image, untagged
            return out
        out.extend(("Deleted", d) for d in self.delete(image_id, parents_unless=in_use_by or (lambda _: None)))
        return out

    def _drop_references(self, image_id: str, names: list[str]) -> list[tuple[str, str]]:
        """Remove tags and repo digests (stored spellings); rmi's "Untagged" lines."""
        with self.store.transaction() as db:
            for name in names:
                db.execute("DELETE FROM tags WHERE name = ?", (name,))
                db.execute("DELETE FROM repo_digests WHERE name = ?", (name,))
        for name in names:
            self.engine.emit("image", "untag", image_id, {"name": refs.parse(name).familiar})
        return [("Untagged", refs.parse(name).familiar) for name in names]

    def delete(self, image_id: str, parents_unless: Callable[[str], object] | None = None) -> list[str]:
        """Delete the image row, then the layers and blobs no other image shares.

        With `parents_unless` (rmi's in_use_by), the untagged parents left without a child go
        too, as Docker's rmi removes a build's intermediate images with its result.
        """
        if self.store.one("SELECT id FROM images WHERE id = ?", (image_id,)) is None:
            return []
        doomed = [image_id] + (self._orphaned_parents(image_id, parents_unless) if parents_unless else [])
        for one in doomed:
            with self.store.transaction() as db:
                db.execute("DELETE FROM images WHERE id = ?", (one,))
                db.execute("UPDATE images SET parent = NULL WHERE parent = ?", (one,))
            self.engine.emit("image", "delete", one, {})
            self.engine.hook("image_removed", image_id=one)
        return doomed + self.collect_garbage()

    def _orphaned_parents(self, image_id: str, in_use_by: Callable[[str], object]) -> list[str]:
        """The chain of untagged parents of `image_id` whose only child is the one below them."""
        out: list[str] = []
        child = image_id
        row = self.store.one("SELECT parent FROM images WHERE id = ?", (image_id,))
        parent = row["parent"] if row else None
        while parent:
            named = self.store.one("SELECT 1 FROM tags WHERE image_id = ? UNION ALL "
                                   "SELECT 1 FROM repo_digests WHERE image_id = ?", (parent, parent))
            if named or self.children(parent) != [child] or in_use_by(parent):
                break
            out.append(parent)
            row = self.store.one("SELECT parent FROM images WHERE id = ?", (parent,))
            child, parent = parent, (row["parent"] if row else None)
        return out

    def _blob_in_use(self, digest: str) -> bool:
        for row in self.store.all("SELECT id, manifest FROM images"):
            if row["id"] == digest or digest in row["manifest"]:
                return True
        return False

    def collect_garbage(self) -> list[str]:
        """Remove layers no image or container needs, and unreferenced blobs.

        Writers of new images hold the "gc" lock shared while their blobs and
        layers are not yet referenced by a row; this takes it exclusively.
        """
        with self.engine.lock("gc"):
            return self._collect_garbage()

    def _collect_garbage(self) -> list[str]:
        needed: set[str] = set()
        blobs: set[str] = set()
        for row in self.store.all("SELECT id, manifest, diff_ids FROM images"):
            needed.update(chain_ids(loads(row["diff_ids"])))
            blobs.add(row["id"])
            manifest = loads(row["manifest"])
            blobs.update(l["digest"] for l in manifest.get("layers", []))
        for row in self.store.all("SELECT image_id FROM containers"):
            img = self.store.one("SELECT diff_ids FROM images WHERE id = ?", (row["image_id"],))
            if img:
                needed.update(chain_ids(loads(img["diff_ids"])))
        removed = []
        driver = None
        for row in self.store.all("SELECT driver, chain_id, cache_id FROM layers"):
            if row["chain_id"] in needed:
                continue
            if row["driver"] == self.engine.storage_driver_name:
                driver = driver or self.engine.storage
                driver.remove(row["cache_id"])
            elif not self._remove_foreign_layer(row["driver"], row["cache_id"]):
                continue
            with self.store.transaction() as db:
                db.execute("DELETE FROM layers WHERE driver = ? AND cache_id = ?", (row["driver"], row["cache_id"]))
            if self.store.one("SELECT 1 FROM layers WHERE chain_id = ?", (row["chain_id"],)) is None:
                self.engine.forget_lock(f"layer-{row['chain_id'].split(':', 1)[1]}", held=False)
            removed.append(row["chain_id"])
        for digest in self.engine.content.digests():
            if digest not in blobs:
                self.engine.content.delete(digest)
        self.engine.content.clean_temporary()
        self._forget_layer_locks()
        return removed

    def _forget_layer_locks(self) -> None:
        """Lock files of layers no row records (a pull or commit killed before its
        layer was marked, or the layer collected): deleted unless someone holds one."""
        import os

        try:
            names = os.listdir(self.engine.runroot / "locks")
        except FileNotFoundError:
            return
        chains = {r["chain_id"] for r in self.store.all("SELECT chain_id FROM layers")}
        for name in names:
            if name.startswith("layer-") and name.endswith(".lock"):
                stem = name[:-len(".lock")]
                if "sha256:" + stem[len("layer-"):] not in chains:
                    self.engine.forget_lock(stem, held=False)

    def _remove_foreign_layer(self, driver_name: str, cache_id: str) -> bool:
        """A layer of another storage driver: remove it with that driver if it runs here."""
        from berth.core import plugins
        from berth.core.errors import BerthError

        try:
            cls = plugins.drivers("storage").supported(driver_name)
            cls(self.engine.root / driver_name, {}).remove(cache_id)
            return True
        except BerthError:
            return False

    # -- presentation ------------------------------------------------------------

    def inspect(self, image: Image) -> dict:
        cfg = image.config
        top = image.top_layer
        graph = {}
        if top:
            try:
                graph = self.engine.storage.metadata(self.layer_cache_id(top))
            except NotFound:
                graph = {}
        return {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": image.repo_digests,
            "Parent": image.parent or "",
            "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
            "Created": image.created,
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": _docker_config(cfg.get("config") or {}),
            "Architecture": cfg.get("architecture", ""),
            "Variant": cfg.get("variant", ""),
            "Os": cfg.get("os", ""),
            "Size": image.size,
            "GraphDriver": {"Name": self.engine.storage_driver_name, "Data": graph},
            "RootFS": {"Type": "layers", "Layers": image.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},  # Go zero time: clients parse it
        }

    def history(self, image: Image) -> list[dict]:
        """Rows newest first: Id, Created, CreatedBy, Size, Comment, Tags."""
        layer_sizes = {}
        for chain_id in image.chain_ids:
            row = self.store.one("SELECT size FROM layers WHERE chain_id = ? AND driver = ?",
                                 (chain_id, self.engine.storage_driver_name))
            layer_sizes[chain_id] = row["size"] if row else 0
        history = image.config.get("history") or [{"created": image.created} for _ in image.diff_ids]
        chain = image.chain_ids
        owners: dict[int, Image] = {len(history) - 1: image}
        current = image
        while current.parent:  # the parent images' tops, where we have them
            try:
                current = self._load(current.parent)
            except (NotFound, Corrupt):
                break
            n = len(current.config.get("history") or current.diff_ids)
            owners.setdefault(n - 1, current)
        rows = []
        layer_index = 0
        for i, entry in enumerate(history):
            empty = entry.get("empty_layer", False)
            size = 0
            if not empty and layer_index < len(chain):
                size = layer_sizes.get(chain[layer_index], 0)
                layer_index += 1
            owner = owners.get(i)
            rows.append({
                "Id": owner.id if owner else "<missing>",
                "Created": entry.get("created", ""),
                "CreatedBy": entry.get("created_by", ""),
                "Size": size,
                "Comment": entry.get("comment", ""),
                "Tags": owner.repo_tags if owner else [],
            })
        rows.reverse()
        return rows


_CONFIG_KEYS = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Image", "Volumes",
                "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal"]


def _docker_config(cfg: dict) -> dict:
    """The image's config in the shape `docker image inspect` prints."""
    out = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
        "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
        "OnBuild": None, "Labels": None,
    }
    out.update({k: v for k, v in cfg.items()})
    return out


def _image_attrs(image: Image) -> dict[str, str]:
    return {"name": image.repo_tags[0]} if image.repo_tags else {}


def _references_going_with(ref: refs.Reference, tags: list[str], digests: list[str]) -> list[str]:
    """What `rmi REF` removes, as Docker: the reference itself and, when it was the last tag
    of its repository, that repository's digest references (which would keep the image
    otherwise, untagged and dangling)."""
    if ref.digest:
        return [f"{ref.name}@{ref.digest}"]
    own = str(ref)
    if any(refs.parse(t).name == ref.name for t in tags if t != own):
        return [own]
    return [own] + [d for d in digests if d.split("@", 1)[0] == ref.name]


def _familiar_or_raw(name: str) -> str:
    try:
        ref = refs.parse(name)
        return ref.familiar
    except InvalidArgument:
        return name


def containers_using(engine):
    """in_use_by(image_id) -> the ID of a container made from it, or None (rmi's refusal)."""
    def in_use_by(image_id: str) -> str | None:
        row = engine.store.one("SELECT id FROM containers WHERE image_id = ? LIMIT 1", (image_id,))
        return row["id"] if row else None
    return in_use_by
