"""What driver authors build with: the helpers berth's own drivers use.

``berth.core.drivers`` says what a driver must do; this module holds what
helps to do it, public and documented (docs/writing-a-driver.md), so a
plugin -- berth's own under ``berth.plugins`` or a third party's -- never
copies a private helper. Everything here is cheap to import (a driver's
module is imported on every container start): the layer-tar code
(``berth.core.oci.archive``, tarfile) loads only when a function needs it.

- names: ``layer_dir_name`` (a layer ID as a directory name, refusing IDs
  that could leave the driver's home), ``check_name`` (a volume or other
  object name, Docker's grammar);
- mounts: ``mount_points``, ``mounts``, ``is_mounted``, ``mounts_under``,
  ``filesystem_type``, ``kernel_filesystems``, ``backing_filesystem_name``,
  ``unmount`` (lazy, one layer), ``unmount_all`` (every layer);
- across processes: ``locked`` (an flock'd file), ``locked_counter`` (a
  mount count several berth processes share), ``write_atomic``,
  ``fsync_dir``;
- trees of any depth: ``remove_tree`` (fd-based, never follows a symlink,
  no recursion on the Python stack: an image may hold a directory
  thousands of levels deep);
- layers: ``decompressed``, ``extract_layer``, ``tree_changes``,
  ``overlay_changes``, ``overlay_upper_entries``, ``write_layer``,
  ``tree_size``, ``changes_size``; and
  ``FullTreeDriver``, the base of a storage driver that keeps each layer as
  a full tree (vfs, btrfs): subclasses write ``clone`` and ``delete`` and
  get changes, diffs and export for free (moby's NaiveDiffDriver);
  ``OverlayDriver``, the base of a storage driver that keeps each layer as
  an overlay upper directory, laid out as Docker's overlay2 (overlay2,
  fuse-overlayfs): subclasses write ``mount_union``;
- volumes: ``DirectoryVolumeDriver``, the base of a volume driver that
  keeps each volume in a directory of its home (options on disk, built
  under a temporary name, removed through a trash name, leftovers swept):
  subclasses write ``prepare``, ``path``, ``mount`` and ``unmount``;
- host tools and networks: ``run`` (a host command whose failure is one
  BerthError line), ``host_routes_overlap`` (whether a route of the host
  covers a subnet).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from berth.core.drivers import Change, StorageDriver, VolumeDriver
from berth.core.errors import BerthError, Conflict, FailedPrecondition, InvalidArgument, NotFound
from berth.core.plumbing import atomic
from berth.core.plumbing.trees import remove_tree  # noqa: F401 - public here, for drivers

TYPE_CHECKING = False  # typing costs a command ~3 ms to import: annotations only
if TYPE_CHECKING:
    import ipaddress
    from typing import BinaryIO

PROC_FILESYSTEMS = Path("/proc/filesystems")
MOUNTINFO = Path("/proc/self/mountinfo")
PROC_ROUTES = Path("/proc/net/route")

# --------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------

_LAYER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def layer_dir_name(id: str) -> str:
    """The directory name of layer `id`; InvalidArgument for an ID that could leave home.

    Layer IDs are chain IDs (``sha256:<hex>``) or container IDs; ``:`` is
    written as ``-`` (overlayfs separates lower directories with ``:``).
    """
    if not isinstance(id, str) or not _LAYER_ID.match(id) or ".." in id:
        raise InvalidArgument(f"invalid layer id {id!r}")
    return id.replace(":", "-")


def check_name(name: str, what: str = "volume", hint: str = "") -> str:
    """`name` if it follows Docker's grammar ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``
    (so it is one safe path component), else InvalidArgument with Docker's
    text: '"x/y" includes invalid characters for a `what` name, only ...',
    then `hint` if given."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f'"{name}" includes invalid characters for a {what} name, only '
                              '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed' + (f". {hint}" if hint else ""))
    return name


# --------------------------------------------------------------------------
# mounts
# --------------------------------------------------------------------------


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees, from
    /proc/self/mountinfo (its octal escapes such as ``\\040`` undone)."""
    out = []
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        out.append((_unescape(fields[4]), fields[fields.index("-") + 1]))
    return out


def mount_points() -> list[str]:
    """Every mount point this process sees (a path mounted twice is listed twice)."""
    return [point for point, _ in mounts()]


def is_mounted(path: os.PathLike | str) -> bool:
    """Whether something is mounted exactly on `path` (unlike os.path.ismount,
    also a bind mount from the same filesystem)."""
    return os.path.realpath(path) in mount_points()


def mounts_under(path: os.PathLike | str) -> list[str]:
    """Mount points at or below `path`, deepest first, each once."""
    base = os.path.realpath(path)
    found = {p for p in mount_points() if p == base or p.startswith(base.rstrip("/") + "/")}
    return sorted(found, key=len, reverse=True)


def filesystem_type(path: os.PathLike | str) -> str:
    """The type of the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(os.path.realpath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    best, kind = "", "unknown"
    for point, fstype in mounts():
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def kernel_filesystems() -> set[str]:
    """Filesystem types the kernel knows, from /proc/filesystems."""
    try:
        text = PROC_FILESYSTEMS.read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def backing_filesystem_name(fstype: str) -> str:
    """Docker's name for a backing filesystem in `info` ("extfs" for ext4)."""
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(fstype, fstype)


def unmount(path: os.PathLike | str) -> None:
    """Detach the mount on `path` lazily (as Docker does), if there is one. It does not
    read the mount table, which grows with every running container: umount2 says
    EINVAL when nothing is mounted there."""
    from berth.core.runtime import syscalls

    try:
        syscalls.umount2(os.fspath(path), syscalls.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def unmount_all(path: os.PathLike | str, what: str = "mount") -> None:
    """Unmount `path` until nothing is mounted on it (two racing processes may
    both have mounted it); FailedPrecondition "error while unmounting `what`
    'PATH': <umount's reason>" if it stays."""
    for _ in range(16):
        if not is_mounted(path):
            return
        import subprocess  # ~3 ms: only when something is mounted

        done = subprocess.run(["umount", "--", os.fspath(path)], capture_output=True, text=True)
        if done.returncode != 0 and is_mounted(path):
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
            raise FailedPrecondition(f"error while unmounting {what} '{path}': {why}")
    raise FailedPrecondition(f"error while unmounting {what} '{path}': still mounted")


# --------------------------------------------------------------------------
# state shared between berth processes
# --------------------------------------------------------------------------


@contextmanager
def locked(path: os.PathLike | str) -> Iterator[int]:
    """Hold an exclusive flock on file `path` (created 0600) for the block;
    yields its descriptor. Every berth process that touches the same state
    takes the same lock: a driver keeps no state in memory between calls."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


@contextmanager
def locked_counter(path: os.PathLike | str) -> Iterator[list[int]]:
    """A count kept in file `path`, locked across processes for the block
    (e.g. how many berth processes mounted a layer: mount when it goes
    0 -> 1, unmount when it goes 1 -> 0).

    Yields a one-element list; whatever the caller leaves in it is saved
    (never below 0). An exception inside the block saves nothing.
    """
    with locked(path) as fd:
        raw = os.pread(fd, 32, 0).strip()
        box = [int(raw) if raw.isdigit() else 0]
        yield box
        data = str(max(box[0], 0)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)


def write_atomic(path: os.PathLike | str, data: bytes, mode: int = 0o600) -> None:
    """Replace file `path` with `data` in one step (temporary file, fsync,
    rename): a reader, or a crash, sees the old content or the new, never half."""
    atomic.write_bytes(path, data, mode, durable=True)


def fsync_dir(path: os.PathLike | str) -> None:
    """Make the entries of directory `path` durable (after a rename into it)."""
    atomic.fsync_dir(path)


# --------------------------------------------------------------------------
# layers (berth.core.oci.archive, imported on first use)
# --------------------------------------------------------------------------


def decompressed(stream: BinaryIO) -> BinaryIO:
    """`stream` (a layer blob: gzip, zstd or plain tar) as an uncompressed tar stream."""
    from berth.core.oci import archive

    return archive.decompressed(stream)


def extract_layer(tar_stream: BinaryIO, dest: Path, whiteouts: str) -> int:
    """Extract an uncompressed, untrusted layer tar into directory `dest`
    safely (nothing lands outside it; Corrupt names the bad entry).

    ``whiteouts="overlay"``: `dest` is an empty overlayfs upper directory
    (whiteouts become 0/0 character devices, opaque directories get
    ``trusted.overlay.opaque=y``); ``"delete"``: `dest` already holds the
    parent's full tree and whiteouts delete from it. Returns the bytes of
    file content written."""
    from berth.core.oci import archive

    return archive.extract_layer(tar_stream, dest, whiteouts)


def tree_changes(old: Path | None, new: Path) -> list[Change]:
    """Changes from full tree `old` (the parent's, or None for a base layer)
    to full tree `new`, sorted by path, as Docker's naive diff reports them."""
    from berth.core.oci import archive

    return archive.tree_changes(old, new)


def overlay_changes(upper: Path, lowers: list[Path], whiteout_files: bool = False) -> list[Change]:
    """Changes recorded in an overlayfs upper directory over `lowers` (top
    first; in the kernel's format, as extract_layer's "overlay" writes them).

    Whiteouts are 0/0 character devices and opaque directories carry
    ``trusted.overlay.opaque``. `whiteout_files`: the upper was written by
    fuse-overlayfs, which also writes whiteouts as files: ``.wh.NAME``
    deletes NAME, ``.wh..wh..opq`` makes its directory opaque, and no name
    starting with ``.wh.`` is content."""
    from berth.core.oci import archive

    return archive.overlay_changes(upper, lowers, whiteout_files)


def write_layer(root: Path, changes: Iterable[Change], out: BinaryIO, opaque_dirs: Iterable[str] = ()) -> None:
    """Write the uncompressed layer tar of `changes` (read from `root`) to `out`:
    deterministic, hard links kept, deletions as ``.wh.`` whiteouts."""
    from berth.core.oci import archive

    archive.write_layer(root, changes, out, opaque_dirs)


def overlay_upper_entries(upper: Path, whiteout_files: bool = False) -> tuple[list[Change], set[str]]:
    """What to export of an overlayfs upper directory: its changes (whiteouts
    as D) and the set of its opaque directories (for write_layer).
    `whiteout_files`: as for overlay_changes (fuse-overlayfs's upper)."""
    from berth.core.oci import archive

    return archive.overlay_upper_entries(upper, whiteout_files)


def tree_size(root: Path) -> int:
    """Bytes of regular-file content under `root`, each inode counted once."""
    from berth.core.oci import archive

    return archive.tree_size(root)


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
    """A storage driver that keeps every layer as a complete tree (its parent's, changed).

    Layout under home: ``trees/<dir>`` the layer's full tree, made by
    `clone` (a copy, a snapshot); ``parents/<dir>`` the parent's id (empty
    for a base layer), written last, so a layer without it is half made and
    is replaced by the next `create`. A subclass writes `clone` and
    `delete`; layers, changes, diffs, export and usage come from here.
    """

    def __init__(self, home, options=None):
        super().__init__(home, options)
        for sub in (self.home, self.home / "trees", self.home / "parents"):
            sub.mkdir(mode=0o700, parents=True, exist_ok=True)

    @abstractmethod
    def clone(self, parent: Path | None, path: Path) -> None:
        """Make `path` a writable copy of tree `parent` (an empty tree if None)."""

    @abstractmethod
    def delete(self, path: Path) -> None:
        """Delete tree `path` made by clone."""

    def tree(self, id: str) -> Path:
        return self.home / "trees" / layer_dir_name(id)

    def _parent_file(self, id: str) -> Path:
        return self.home / "parents" / layer_dir_name(id)

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
        write_atomic(self._parent_file(id), (parent or "").encode())

    def create_rw(self, id: str, parent: str | None) -> None:
        self.create(id, parent)

    def apply_diff(self, id: str, diff: BinaryIO) -> int:
        parent = self.parent(id)
        try:
            return extract_layer(decompressed(diff), self.tree(id), "delete")
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
        parent = self.parent(id)
        return tree_changes(self.tree(parent) if parent else None, self.tree(id))

    def export_diff(self, id: str, out: BinaryIO) -> None:
        write_layer(self.tree(id), self.changes(id), out)

    def usage(self, id: str) -> int:
        return changes_size(self.tree(id), self.changes(id))

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", backing_filesystem_name(filesystem_type(self.home)))]

    def metadata(self, id: str) -> dict[str, str]:
        return {"Dir": str(self.tree(id))}

    def layer_ids(self) -> list[str]:
        names = {e.name for e in os.scandir(self.home / "trees") if not e.name.startswith(".")}
        names.update(e.name for e in os.scandir(self.home / "parents") if not e.name.startswith("."))
        return sorted(names)


# --------------------------------------------------------------------------
# host tools and networks
# --------------------------------------------------------------------------


class OverlayDriver(StorageDriver):
    """A storage driver that keeps each layer as an overlay upper directory,
    laid out under home as Docker's overlay2::

        <dir>/diff     the layer's own files (an overlay upper dir: whiteouts are
                       0/0 character devices, opaque dirs carry trusted.overlay.opaque)
        <dir>/link     the layer's short name; l/<short> -> ../<dir>/diff
        <dir>/lower    the ancestors' short links, nearest first ("l/A:l/B")
        <dir>/parent   the parent's id (absent for a base layer)
        <dir>/work     the union's work dir (writable layers only)
        <dir>/merged   where mount() puts the union
        <dir>/mounts   the mount count, shared by every berth process (flock)

    ``<dir>`` is ``layer_dir_name(id)``. Short links keep the union's
    options, relative to home, short even with 100+ layers. A layer is built
    under ``.tmp-*`` and renamed into place, so a layer under its real name
    is complete. A subclass writes ``mount_union`` (the kernel's overlay,
    fuse-overlayfs ...) and ``status``; ``union_is_served`` when a mounted
    union can die (a FUSE server), ``whiteout_files`` when the union also
    writes whiteouts as ``.wh.`` files (fuse-overlayfs).
    """

    independent_layers = True  # create() only links the parent's diff by name
    whiteout_files = False

    def __init__(self, home, options=None):
        super().__init__(home, options)
        (self.home / "l").mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)

    @abstractmethod
    def mount_union(self, merged: Path, options: str, id: str) -> None:
        """Mount on `merged` the union that `options` describe, overlay's
        mount options (``lowerdir=A:B[,upperdir=U,workdir=W]``) with every
        path relative to home; a BerthError naming layer `id` if it fails."""

    def union_is_served(self, merged: Path) -> bool:
        """Whether the union mounted on `merged` works (default: it is mounted)."""
        return is_mounted(merged)

    # ------------------------------------------------------------ layout

    def _dir(self, id: str) -> Path:
        name = layer_dir_name(id)
        if name == "l":  # home/l holds the short links
            raise InvalidArgument(f"invalid layer id {id!r}")
        return self.home / name

    def _lowers(self, id: str) -> list[str]:
        """The ancestors' short links relative to home, nearest first."""
        try:
            text = (self._dir(id) / "lower").read_text().strip()
        except FileNotFoundError:
            return []
        return text.split(":") if text else []

    def _lower_dirs(self, id: str) -> list[Path]:
        return [Path(os.path.realpath(self.home / link)) for link in self._lowers(id)]

    def _link(self, id: str) -> str:
        return "l/" + (self._dir(id) / "link").read_text().strip()

    def _require(self, id: str) -> Path:
        if not self.exists(id):
            raise NotFound(f"{self.name}: layer {id} does not exist")
        return self._dir(id)

    # ------------------------------------------------------------ lifecycle

    def create(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=False)

    def create_rw(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=True)

    def _make(self, id: str, parent: str | None, writable: bool) -> None:
        from berth.core.plumbing.ids import random_choice

        final = self._dir(id)
        if self.exists(id):
            raise Conflict(f"{self.name}: layer {id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"{self.name}: parent layer {parent} does not exist")
        if os.path.lexists(final):  # half made by a crash
            self.remove(id)
        tmp = self.home / f".tmp-{final.name}-{os.urandom(4).hex()}"
        tmp.mkdir(mode=0o700)
        try:
            (tmp / "diff").mkdir(mode=0o755)
            (tmp / "merged").mkdir(mode=0o700)
            if writable:
                (tmp / "work").mkdir(mode=0o700)
            short = "".join(random_choice(_LINK_ALPHABET) for _ in range(26))
            (tmp / "link").write_text(short)
            if parent is not None:
                (tmp / "parent").write_text(parent)
                (tmp / "lower").write_text(":".join([self._link(parent), *self._lowers(parent)]))
            # the short link first (dangling for a moment): a layer under its real name is complete
            os.symlink(f"../{final.name}/diff", self.home / "l" / short)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp, ignore_errors=True)
            raise

    def apply_diff(self, id: str, diff: BinaryIO) -> int:
        upper = self._require(id) / "diff"
        try:
            return extract_layer(decompressed(diff), upper, "overlay")
        except BaseException:
            remove_tree(upper)  # back to the state after create
            upper.mkdir(mode=0o755)
            raise

    def exists(self, id: str) -> bool:
        d = self._dir(id)
        return (d / "diff").is_dir() and (d / "link").is_file()

    def remove(self, id: str) -> None:
        d = self._dir(id)
        if not os.path.lexists(d):
            return
        for point in mounts_under(d):
            unmount(point)
        try:
            (self.home / "l" / (d / "link").read_text().strip()).unlink(missing_ok=True)
        except (FileNotFoundError, ValueError):
            pass
        remove_tree(d)

    def layer_ids(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if e.name != "l" and not e.name.startswith(".") and e.is_dir(follow_symlinks=False))

    # ------------------------------------------------------------ mounts

    def mount(self, id: str) -> Path:
        d = self._require(id)
        lowers = self._lowers(id)
        if not lowers:
            return d / "diff"  # a base layer needs no union
        merged = d / "merged"
        with locked_counter(d / "mounts") as count:
            if count[0] > 0 and self.union_is_served(merged):
                count[0] += 1
                return merged
            if (d / "work").is_dir():
                options = f"lowerdir={':'.join(lowers)},upperdir={d.name}/diff,workdir={d.name}/work"
            else:  # an image layer: a read-only union of itself and its ancestors
                options = f"lowerdir={':'.join([self._link(id), *lowers])}"
            unmount(merged)  # one left over by a crash, or whose server died: start afresh
            self.mount_union(merged, options, id)
            count[0] = 1
        return merged

    def unmount(self, id: str) -> None:
        d = self._dir(id)
        if not (d / "merged").is_dir() or not self._lowers(id):
            return
        with locked_counter(d / "mounts") as count:
            count[0] -= 1
            if count[0] <= 0:
                count[0] = 0
                unmount(d / "merged")  # lazy, as Docker: a process still inside keeps it until it leaves

    def cleanup(self) -> None:
        for point in mounts_under(self.home):
            unmount(point)
        for counter in self.home.glob("*/mounts"):
            counter.unlink(missing_ok=True)

    # ------------------------------------------------------------ contents

    def changes(self, id: str) -> list[Change]:
        d = self._require(id)
        return overlay_changes(d / "diff", self._lower_dirs(id), self.whiteout_files)

    def export_diff(self, id: str, out: BinaryIO) -> None:
        upper = self._require(id) / "diff"
        entries, opaque = overlay_upper_entries(upper, self.whiteout_files)
        write_layer(upper, entries, out, opaque)

    def usage(self, id: str) -> int:
        return tree_size(self._require(id) / "diff")

    def metadata(self, id: str) -> dict[str, str]:
        d = self._require(id)
        data = {"UpperDir": str(d / "diff"), "MergedDir": str(d / "merged")}
        if (d / "work").is_dir():
            data["WorkDir"] = str(d / "work")
        lowers = self._lower_dirs(id)
        if lowers:
            data["LowerDir"] = ":".join(map(str, lowers))
        return data


_LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class DirectoryVolumeDriver(VolumeDriver):
    """A volume driver that keeps each volume in a directory of its home
    (the contrib tmpfs and loop drivers)::

        <home>/<name>/options.json   the volume's options (validate_options'), written last
        <home>/<name>/lock           flock'd around (un)mounting and removing: volume_lock(name)
        <home>/<name>/...            what prepare() put there (a mount point, an image)

    Only the disk counts, never this object's memory, so any number of
    berth processes can use one volume. Every method refuses a name that
    could leave home (check_name). ``create`` builds the volume under
    ``.tmp-*``, calls ``prepare`` and renames it into place; creating it
    again with equal options does nothing, with others is Conflict.
    ``remove`` unmounts everything under the volume (FailedPrecondition if
    busy), renames it to ``.trash-*`` and deletes it. What a crash left
    (``.trash-*``, ``.tmp-*`` older than STALE_SECONDS) is swept by the next
    ``create``. A subclass writes ``validate_options``, ``prepare``,
    ``path``, ``mount`` and ``unmount``, and may extend ``create``.
    """

    STALE_SECONDS = 600

    def __init__(self, home, options=None):
        super().__init__(home, options)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)

    @staticmethod
    def validate_options(options) -> dict[str, str]:
        """The volume's options with defaults filled in (equal options must
        compare equal); InvalidArgument if one is bad. Default: none allowed."""
        for key in options:
            raise InvalidArgument(f'invalid option: "{key}"')
        return {}

    def prepare(self, tmp: Path, name: str, options: dict[str, str]) -> None:
        """Fill `tmp`, the new volume's directory (still under its temporary name)."""

    def volume_dir(self, name: str) -> Path:
        """The volume's directory (which may not exist); InvalidArgument for a bad name."""
        return self.home / check_name(name, f"{self.name} volume")

    def require(self, name: str) -> Path:
        """The directory of existing volume `name`; NotFound "no such volume: NAME"."""
        target = self.volume_dir(name)
        if not (target / "options.json").is_file():
            raise NotFound(f"no such volume: {name}")
        return target

    def volume_options(self, name: str) -> dict[str, str]:
        """The options volume `name` was created with ({} if it does not exist)."""
        import json

        try:
            return json.loads((self.volume_dir(name) / "options.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise BerthError(f"volume {name}: unreadable options.json") from None

    def volume_lock(self, name: str):
        """A context manager holding volume `name`'s lock (NotFound if it does not exist)."""
        return locked(self.require(name) / "lock")

    def create(self, name: str, options) -> None:
        import json

        target = self.volume_dir(name)
        opts = self.validate_options(dict(options or {}))
        if not target.exists():
            self._sweep()
            tmp = self.home / f".tmp-{name}-{os.urandom(4).hex()}"
            try:
                tmp.mkdir(mode=0o700)
                self.prepare(tmp, name, opts)
                write_atomic(tmp / "options.json", json.dumps(opts).encode())  # last: a volume with it is whole
                try:
                    os.rename(tmp, target)
                except OSError:  # another process made it meanwhile
                    if not target.exists():
                        raise
            finally:
                remove_tree(tmp, ignore_errors=True)
        if self.volume_options(name) != opts:
            raise Conflict(f"volume {name} already exists with different options")

    def remove(self, name: str) -> None:
        target = self.require(name)
        trash = self.home / f".trash-{name}-{os.urandom(4).hex()}"
        with locked(target / "lock"):
            for point in mounts_under(target):  # the deepest first
                unmount_all(point, "volume path")
            if mounts_under(target):
                raise FailedPrecondition(f"remove {name}: volume has mounts under {target}")
            os.rename(target, trash)
        remove_tree(trash, ignore_errors=True)

    def list(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if not e.name.startswith(".") and os.path.isfile(os.path.join(e.path, "options.json")))

    def capabilities(self) -> dict[str, str]:
        return {"Scope": "local"}

    def _sweep(self) -> None:
        """Delete what crashed creates and removes left behind."""
        import time

        now = time.time()
        for e in os.scandir(self.home):
            stale = e.name.startswith(".tmp-") and now - e.stat(follow_symlinks=False).st_mtime > self.STALE_SECONDS
            if (stale or e.name.startswith(".trash-")) and not mounts_under(e.path):
                remove_tree(e.path, ignore_errors=True)


def run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    """Run host tool `argv`; its stdout, or BerthError "`what`: <its last line of error>"."""
    import subprocess  # ~3 ms: a container start runs no host tool

    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BerthError(f"{what}: {argv[0]} is not installed") from None
    if proc.returncode != 0:
        message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise BerthError(f"{what}: {message[-1] if message else f'{argv[0]} exited {proc.returncode}'}")
    return proc.stdout


def host_routes_overlap(net: ipaddress.IPv4Network) -> bool:
    """Whether a route of this host (other than the default route) covers part
    of `net`: a subnet chosen automatically must avoid them."""
    import ipaddress  # not on a container start

    try:
        lines = PROC_ROUTES.read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        dest = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        route = ipaddress.ip_network(f"{dest}/{mask}", strict=False)
        if route.prefixlen and route.overlaps(net):
            return True
    return False
