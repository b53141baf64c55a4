"""What berth's storage drivers share: layer names, mounts, the host's filesystems,
and the base of the drivers that keep each layer as a full tree (vfs, btrfs)."""

from __future__ import annotations

import fcntl
import os
import re
import stat
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from berth.core.drivers import (  # berth.core.oci.archive (tarfile) is imported where used: not on a container start
    Change,
    StorageDriver,
)
from berth.core.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.core.plumbing import atomic

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import BinaryIO

PROC_FILESYSTEMS = Path("/proc/filesystems")
MOUNTINFO = Path("/proc/self/mountinfo")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def dir_name(id: str) -> str:
    """The directory name of layer `id`.

    Layer ids are chain ids (``sha256:<hex>``) or container ids; ``:`` is
    written as ``-`` because overlayfs separates lower directories with it.
    """
    if not _ID.match(id) or ".." in id:
        raise InvalidArgument(f"invalid layer id {id!r}")
    return id.replace(":", "-")


def kernel_filesystems(path: Path | None = None) -> set[str]:
    """Filesystem types the kernel knows, from /proc/filesystems."""
    try:
        text = (path or PROC_FILESYSTEMS).read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees."""
    out = []
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        out.append((_unescape(fields[4]), fields[sep + 1]))
    return out


def is_mounted(path: Path) -> bool:
    """Whether something is mounted on `path`."""
    target = os.path.realpath(path)
    return any(point == target for point, _ in mounts())


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    base = os.path.realpath(path)
    found = [p for p, _ in mounts() if p == base or p.startswith(base + "/")]
    return sorted(set(found), key=len, reverse=True)


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(os.path.realpath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    best, kind = "", "unknown"
    for point, fstype in mounts():
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def backing_filesystem_name(fstype: str) -> str:
    """Docker's name for a backing filesystem in `info` ("extfs" for ext4)."""
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(fstype, fstype)


def unmount(path: Path) -> None:
    """Detach the mount on `path` (lazily, as Docker does), if there is one."""
    from berth.core.runtime import syscalls

    if is_mounted(path):
        syscalls.umount2(str(path), syscalls.MNT_DETACH)


def run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a host tool; a failure raises BerthError naming `what` and the tool's message."""
    import subprocess  # ~3 ms: a container start runs no host tool

    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BerthError(f"{what}: {argv[0]} is not installed") from None
    if proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise BerthError(f"{what}: {message[-1] if message else f'{argv[0]} exited {proc.returncode}'}")
    return proc.stdout


@contextmanager
def locked_counter(path: Path) -> Iterator[list[int]]:
    """A mount count kept in file `path`, locked across processes.

    Yields a one-element list; whatever the caller leaves in it is saved.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).strip()
        box = [int(raw) if raw.isdigit() else 0]
        yield box
        data = str(max(box[0], 0)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def changes_size(root: Path, changes: list[Change]) -> int:
    """Bytes of the regular files that `changes` add or change under `root`."""
    total = 0
    for change in changes:
        if change.kind == "D":
            continue
        try:
            st = os.lstat(root / change.path.lstrip("/"))
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total


class FullTreeDriver(StorageDriver):
    """A driver that keeps every layer as a complete tree (its parent's, changed).

    Layout under home: ``trees/<dir>`` the layer's full tree, made by
    `clone` (a copy, a snapshot); ``parents/<dir>`` the parent's id (empty
    for a base layer), written last, so a layer without it is half made
    and is replaced by the next `create`.
    """

    def __init__(self, home, options=None):
        super().__init__(home, options)
        for sub in (self.home, self.home / "trees", self.home / "parents"):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)

    # what subclasses provide
    @abstractmethod
    def clone(self, parent: Path | None, path: Path) -> None:
        """Make `path` a writable copy of tree `parent` (an empty tree if None)."""

    @abstractmethod
    def delete(self, path: Path) -> None:
        """Delete tree `path` made by clone."""

    # the interface
    def tree(self, id: str) -> Path:
        return self.home / "trees" / dir_name(id)

    def _parent_file(self, id: str) -> Path:
        return self.home / "parents" / dir_name(id)

    def parent(self, id: str) -> str | None:
        try:
            return self._parent_file(id).read_text() or None
        except FileNotFoundError:
            raise NotFound(f"{self.name}: layer {id} does not exist") from None

    def create(self, id: str, parent: str | None) -> None:
        if self.exists(id):
            raise Conflict(f"{self.name}: layer {id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"{self.name}: parent layer {parent} does not exist")
        path = self.tree(id)
        if os.path.lexists(path):  # half made by a crash
            self.delete(path)
        self.clone(self.tree(parent) if parent else None, path)
        atomic.write_text(self._parent_file(id), parent or "")

    def create_rw(self, id: str, parent: str | None) -> None:
        self.create(id, parent)

    def apply_diff(self, id: str, diff: BinaryIO) -> int:
        from berth.core.oci import archive

        parent = self.parent(id)
        try:
            return archive.extract_layer(archive.decompressed(diff), self.tree(id), "delete")
        except BaseException:
            self.delete(self.tree(id))  # back to the state after create
            self.clone(self.tree(parent) if parent else None, self.tree(id))
            raise

    def mount(self, id: str) -> Path:
        if not self.exists(id):
            raise NotFound(f"{self.name}: layer {id} does not exist")
        return self.tree(id)

    def unmount(self, id: str) -> None:
        """Nothing to undo: the tree is the root filesystem."""

    def exists(self, id: str) -> bool:
        return self._parent_file(id).exists() and self.tree(id).is_dir()

    def remove(self, id: str) -> None:
        self._parent_file(id).unlink(missing_ok=True)
        if os.path.lexists(self.tree(id)):
            self.delete(self.tree(id))

    def changes(self, id: str) -> list[Change]:
        from berth.core.oci import archive

        parent = self.parent(id)
        return archive.tree_changes(self.tree(parent) if parent else None, self.tree(id))

    def export_diff(self, id: str, out: BinaryIO) -> None:
        from berth.core.oci import archive

        archive.write_layer(self.tree(id), self.changes(id), out)

    def usage(self, id: str) -> int:
        return changes_size(self.tree(id), self.changes(id))

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", backing_filesystem_name(filesystem_type(self.home)))]

    def metadata(self, id: str) -> dict[str, str]:
        return {"Dir": str(self.tree(id))}

