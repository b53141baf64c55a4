"""Layers the builder writes itself (COPY, ADD, WORKDIR), without a container.

`ImageRoot` mounts an image's filesystem (a throwaway writable layer on
top of it, removed on exit) so a destination is resolved as the image
sees it: an existing directory, a symlink followed inside the root, the
image's /etc/passwd for --chown. The entries of the new layer are tar
headers with the host file they are read from; `write_layer_blob` streams
them as an uncompressed layer tar straight into the content store.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import time

from berth.core.build.parser import DockerfileError
from berth.core.build.scratch import VIEW_PREFIX, Scratch, view_name


class ImageRoot:
    """`with ImageRoot(engine, image) as root:` the image's filesystem at host path `root`."""

    def __init__(self, engine, image):
        self.engine, self.image = engine, image
        self.view_id: str | None = None
        self.scratch: Scratch | None = None

    def __enter__(self) -> str:
        if self.image is None or not self.image.top_layer:
            self.scratch = Scratch(self.engine.root)
            return self.scratch.path
        images, driver = self.engine.images, self.engine.storage
        images.ensure_layers(self.image.diff_ids, [l["digest"] for l in self.image.manifest.get("layers", [])])
        parent = images.layer_cache_id(self.image.top_layer)
        self.scratch = Scratch(self.engine.root, VIEW_PREFIX)  # reaped with its layer if this build is killed
        self.view_id = view_name(self.scratch)
        try:
            driver.create_rw(self.view_id, parent)
            return os.path.realpath(driver.mount(self.view_id))
        except BaseException:
            try:
                driver.remove(self.view_id)
            finally:
                self.scratch.close()
            raise

    def __exit__(self, *exc) -> None:
        try:
            if self.view_id:
                driver = self.engine.storage
                try:
                    driver.unmount(self.view_id)
                finally:
                    driver.remove(self.view_id)
        finally:
            if self.scratch:
                self.scratch.close()


class Entries:
    """The new layer's entries by path (later ones replace earlier ones): path -> (TarInfo, source)."""

    def __init__(self):
        self.by_path: dict[str, tuple[tarfile.TarInfo, object]] = {}

    def add(self, info: tarfile.TarInfo, source=None) -> None:
        self.by_path[info.name] = (info, source)

    def __bool__(self) -> bool:
        return bool(self.by_path)

    def __contains__(self, path: str) -> bool:
        return path in self.by_path

    def sorted(self):
        return [self.by_path[k] for k in sorted(self.by_path, key=lambda p: p.split("/"))]


def in_root(root: str, path: str) -> str:
    """`path` of the image resolved inside `root` (symlinks followed, never out of it), as a
    path relative to the root ("" for the root itself)."""
    from berth.core.runtime.paths import resolve_in_root

    real = resolve_in_root(root, posixpath.normpath("/" + path))
    return os.path.relpath(real, root).replace(os.sep, "/").lstrip(".") if real != root else ""


def add_parents(entries: Entries, root: str, rel: str, uid: int = 0, gid: int = 0) -> None:
    """Directory entries for every parent of `rel`: as the image has it, else new (0755, uid:gid)."""
    missing = []
    head = posixpath.dirname(rel)
    while head and head not in entries:  # up to the first parent already there: linear, however deep
        missing.append(head)
        head = posixpath.dirname(head)
    for directory in reversed(missing):
        add_dir(entries, root, directory, uid, gid)


def add_dir(entries: Entries, root: str, rel: str, uid: int = 0, gid: int = 0, mode: int = 0o755,
            mtime: float | None = None) -> None:
    if not rel or rel in entries:
        return
    info = tarfile.TarInfo(rel)
    info.type = tarfile.DIRTYPE
    try:
        st = os.lstat(os.path.join(root, rel))
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    else:
        info.mode, info.uid, info.gid = mode, uid, gid
        info.mtime = int(time.time() if mtime is None else mtime)
    entries.add(info)


def dir_entries(root: str, path: str) -> Entries:
    """WORKDIR: the entries that make `path` a directory, none if it is one already."""
    rel = in_root(root, path)
    entries = Entries()
    if rel and not os.path.isdir(os.path.join(root, rel)):
        add_parents(entries, root, rel)
        add_dir(entries, root, rel)
    return entries


def file_entry(rel: str, st: os.stat_result, host: str, uid: int, gid: int, chmod: int | None):
    """A regular file or symlink of a copy source as a layer entry (None for other types)."""
    info = tarfile.TarInfo(rel)
    info.uid, info.gid = uid, gid
    info.mtime = int(st.st_mtime)
    info.mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(host)
        info.mode = 0o777
        return info, None
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        return info, None
    if stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        return info, host
    return None, None


def write_layer_blob(engine, entries: Entries):
    """Stream `entries` as an uncompressed layer tar into the content store; return its Layer."""
    import threading

    from berth.core.images.image import Layer
    from berth.core.oci.mediatypes import OCI_LAYER

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    failure: list[BaseException] = []

    def produce():
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink:
                _write_tar(entries, sink)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)

    writer = threading.Thread(target=produce, name="berth-layer", daemon=True)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as source:
            digest, size = engine.content.put(source)
    finally:
        writer.join()
    if failure:
        if not _blob_in_use(engine, digest):
            engine.content.delete(digest)
        exc = failure[0]
        if isinstance(exc, OSError):
            raise DockerfileError(f"failed to copy files: {exc}") from None
        raise exc
    return Layer(digest, size, OCI_LAYER, digest)


def _blob_in_use(engine, digest: str) -> bool:
    return engine.images._blob_in_use(digest)


def _write_tar(entries: Entries, sink) -> None:
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for info, source in entries.sorted():
            info.uname = info.gname = ""
            if source is None:
                tf.addfile(info)
            elif isinstance(source, str):
                fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                with os.fdopen(fd, "rb") as f:
                    if os.fstat(f.fileno()).st_size != info.size:
                        raise OSError(f"{source} changed while it was copied")
                    tf.addfile(info, f)
            else:  # a callable giving a file object (a member of an archive)
                with source() as f:
                    tf.addfile(info, f)
