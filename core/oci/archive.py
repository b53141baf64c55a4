"""OCI layer tarballs: decompress, extract safely, compute changes, export.

Every layer tarball is untrusted input. Extraction resolves each path one
component at a time from an open descriptor of the destination
(``openat(..., O_NOFOLLOW)``), so nothing can land outside it, a symlink in
a parent path is refused instead of followed, and chown/chmod/utime/xattr
calls act on the entry itself, never on a symlink's target.

Two whiteout formats (``extract_layer(..., whiteouts=...)``):

- ``"overlay"``: the destination is an empty overlayfs upper directory;
  ``.wh.NAME`` becomes a 0/0 character device NAME and ``.wh..wh..opq``
  sets ``trusted.overlay.opaque=y`` on its directory.
- ``"delete"``: the destination already holds a copy of the parent layer
  (vfs copy, btrfs snapshot); ``.wh.NAME`` deletes NAME and an opaque
  marker deletes the directory's children that this layer did not add.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable

from berth.core.drivers import Change
from berth.core.errors import Corrupt
from berth.core.plumbing.records import Record
from berth.core.plumbing.trees import iterate, remove_tree, walk_files

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."

#: refuse a layer whose uncompressed tar is larger than this (a decompression bomb)
DEFAULT_MAX_SIZE = 64 << 30

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20

_O_DIR = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


# --------------------------------------------------------------------------
# decompression
# --------------------------------------------------------------------------


class _Prefixed(io.RawIOBase):
    """A stream that yields `head` and then the rest of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return _read_into(self._stream, buf)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """Return a stream of the uncompressed tar inside `stream`.

    gzip and zstd are recognised by their magic bytes; anything else is
    passed through as a plain tar. Decompression is streaming: the layer is
    never held in memory whole.
    """
    head = b""
    while len(head) < 4:
        more = stream.read(4 - len(head))
        if not more:
            break
        head += more
    raw = io.BufferedReader(_Prefixed(head, stream), _CHUNK)
    if head.startswith(_GZIP_MAGIC):
        return io.BufferedReader(_Gunzip(raw), _CHUNK)
    if head.startswith(_ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


class _Gunzip(io.RawIOBase):
    """gzip decoding straight on zlib, in large chunks (gzip.GzipFile's 8 KiB
    steps cost more than the inflating). zlib checks each member's CRC and
    length; members may follow one another, zero padding may end the stream.
    """

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._inflate = zlib.decompressobj(31)
        self._pending = b""  # compressed input not yet given to zlib
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self._done:
            if self._inflate.eof:  # a member ended: zero padding and EOF, or the next member
                rest = self._inflate.unused_data.lstrip(b"\0")
                while not rest:
                    more = self._stream.read(_CHUNK)
                    if not more:
                        self._done = True
                        return 0
                    rest = more.lstrip(b"\0")
                self._inflate = zlib.decompressobj(31)
                self._pending = rest
            data = self._pending or self._stream.read(_CHUNK)
            if not data:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            out = self._inflate.decompress(data, len(buf))
            # At a member's end the rest is in unused_data (unconsumed_tail may repeat it)
            self._pending = b"" if self._inflate.eof else self._inflate.unconsumed_tail
            if out:
                buf[: len(out)] = out
                return len(out)
        return 0


class _Limited(io.RawIOBase):
    """Counts what is read and refuses to go past `limit` bytes."""

    def __init__(self, stream: BinaryIO, limit: int):
        self._stream = stream
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = _read_into(self._stream, buf)
        self.count += n
        if self.count > self._limit:
            raise Corrupt(f"layer is larger than the limit of {self._limit} bytes (decompression bomb?)")
        return n


def _read_into(stream: BinaryIO, buf) -> int:
    """stream.readinto(buf) where the stream has it: one copy fewer than read()."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto(buf) or 0
    data = stream.read(len(buf))
    buf[: len(data)] = data
    return len(data)


def _decompress_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [tarfile.TarError, EOFError, zlib.error]  # _Gunzip raises the last two
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errors)


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends an archive silently at a bad header; a layer must not."""

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as exc:
            raise Corrupt(f"invalid layer tar: bad header: {exc}") from None


# --------------------------------------------------------------------------
# safe path resolution
# --------------------------------------------------------------------------


def clean_name(name: str) -> tuple[str, ...]:
    """The components of a tar entry name, relative to the layer root.

    Absolute names are made relative (as Docker does), ``.`` and empty
    components dropped and ``..`` resolved lexically; a name that climbs
    out of the root raises Corrupt.
    """
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise Corrupt(f"invalid layer tar: entry {name!r} points outside the layer")
            parts.pop()
            continue
        parts.append(comp)
    return tuple(parts)


def _display(parts: Iterable[str]) -> str:
    return "/" + "/".join(parts)


# errnos of the host's filesystem, not of what a layer asks for
_HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM})


def _short(name: str, limit: int = 100) -> str:
    """An entry name for one line of error: its start and end when it is long."""
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-limit // 2:]}"


def _open_dir(root_fd: int, parts: tuple[str, ...], create: bool) -> int | None:
    """An O_PATH descriptor of directory `parts` under root_fd.

    Never follows a symlink: a symlink (or any non-directory) where a
    directory is needed raises Corrupt. A missing component is made (0755)
    when `create`, else None is returned.
    """
    fd = os.dup(root_fd)
    try:
        for i, comp in enumerate(parts):
            try:
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                what = "a symlink" if _is_symlink(fd, comp) else "not a directory"
                raise Corrupt(
                    f"invalid layer tar: {_display(parts[: i + 1])} is {what} but is used as a parent directory"
                ) from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(dir_fd: int, name: str) -> None:
    """Remove whatever `name` is (a directory with its contents), if present."""
    st = _lstat(dir_fd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(name, dir_fd=dir_fd)  # fd-based: safe against symlinks, any depth
    else:
        os.unlink(name, dir_fd=dir_fd)


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


# --------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------


class _Extraction(Record):
    """One layer's extraction under way: `unpacked`, the paths this layer put
    in place (an opaque marker keeps them); `dir_times`, directories whose
    times are set last (their children change them)."""

    REQUIRED = ("root_fd", "whiteouts")
    FIELDS = {"written": 0, "unpacked": set(), "dir_times": []}


def extract_layer(
    tar_stream: BinaryIO,
    dest: Path,
    whiteouts: str,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
) -> int:
    """Extract the uncompressed OCI layer tar `tar_stream` into `dest`.

    :param whiteouts: ``"overlay"`` or ``"delete"`` (see the module docstring).
    :param max_size: refuse (Corrupt) once the tar stream exceeds this many bytes.
    :returns: bytes of regular-file content written.
    :raises Corrupt: a broken or hostile tar (one line saying which entry).

    Owners, modes (setuid too), mtimes, xattrs, symlinks, hard links, fifos
    and device nodes are preserved; later duplicate entries win.
    """
    if whiteouts not in ("overlay", "delete"):
        raise ValueError(f"whiteouts must be 'overlay' or 'delete', not {whiteouts!r}")
    limited = io.BufferedReader(_Limited(tar_stream, max_size), _CHUNK)
    root_fd = os.open(dest, _O_DIR)
    state = _Extraction(root_fd=root_fd, whiteouts=whiteouts)
    try:
        try:
            with tarfile.open(fileobj=limited, mode="r|", tarinfo=_StrictTarInfo) as tf:
                for member in tf:
                    try:
                        _extract_member(state, tf, member)
                    except OSError as exc:
                        if exc.errno in _HOST_ERRNOS:
                            raise  # the host's trouble (a full disk), not the layer's
                        raise Corrupt(f"invalid layer tar: {_short(member.name)}: "
                                      f"{exc.strerror or exc}") from None
        except _decompress_errors() as exc:
            raise Corrupt(f"invalid layer tar: {exc}") from None
        for parts, mtime in reversed(state.dir_times):
            _set_dir_time(root_fd, parts, mtime)
    finally:
        os.close(root_fd)
    return state.written


def _extract_member(state: _Extraction, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    parts = clean_name(member.name)
    if not parts:
        if member.isdir():  # "./": the layer root's own metadata
            _apply_metadata(state.root_fd, member, is_dir=True)
            state.dir_times.append(((), member.mtime))
        return
    *parent, base = parts
    parent = tuple(parent)
    if base.startswith(WHITEOUT_PREFIX):
        _whiteout(state, parent, base, member)
        return
    if state.whiteouts == "overlay" and member.name and _is_overlay_whiteout_member(member):
        # a literal 0/0 char device means "deleted" to overlayfs: same as .wh.NAME
        _whiteout(state, parent, WHITEOUT_PREFIX + base, member)
        return
    pfd = _open_dir(state.root_fd, parent, create=True)
    try:
        _place(state, tf, member, pfd, parts)
    finally:
        os.close(pfd)
    state.unpacked.add(parts)


def _is_overlay_whiteout_member(member: tarfile.TarInfo) -> bool:
    return member.ischr() and member.devmajor == 0 and member.devminor == 0


def _whiteout(state: _Extraction, parent: tuple[str, ...], base: str, member: tarfile.TarInfo) -> None:
    if base == OPAQUE_MARKER:
        _opaque(state, parent)
        return
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return  # aufs bookkeeping (.wh..wh.plnk ...): not content
    name = base[len(WHITEOUT_PREFIX) :]
    if name in ("", ".", ".."):
        raise Corrupt(f"invalid layer tar: invalid whiteout {_display(parent + (base,))}")
    if state.whiteouts == "overlay":
        pfd = _open_dir(state.root_fd, parent, create=True)
        try:
            _remove(pfd, name)
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
            if os.geteuid() == 0:
                os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)
        state.unpacked.add(parent + (name,))
    else:
        pfd = _open_dir(state.root_fd, parent, create=False)
        if pfd is None:
            return  # nothing below to delete
        try:
            _remove(pfd, name)
        finally:
            os.close(pfd)


def _opaque(state: _Extraction, parent: tuple[str, ...]) -> None:
    if state.whiteouts == "overlay":
        pfd = _open_dir(state.root_fd, parent, create=True)
        try:
            os.setxattr(_proc(pfd), OPAQUE_XATTR, b"y")
        finally:
            os.close(pfd)
        return
    pfd = _open_dir(state.root_fd, parent, create=False)
    if pfd is None:
        return
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            names = os.listdir(dfd)
        finally:
            os.close(dfd)
        for name in names:
            if parent + (name,) not in state.unpacked:
                _remove(pfd, name)
    finally:
        os.close(pfd)


def _place(state: _Extraction, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, parts) -> None:
    base = parts[-1]
    existing = _lstat(pfd, base)
    if member.isdir():
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            _remove(pfd, base)
            existing = None
        if existing is None:
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, _O_DIR, dir_fd=pfd)
        try:
            _apply_metadata(fd, member, is_dir=True, xattrs_ok=True)
        finally:
            os.close(fd)
        state.dir_times.append((parts, member.mtime))
        return
    _remove(pfd, base)  # later entries win; never write into an existing inode
    if member.isreg():
        _write_file(state, tf, member, pfd, base)
    elif member.issym():
        os.symlink(member.linkname, base, dir_fd=pfd)
        if os.geteuid() == 0:
            os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        _set_xattrs(f"{_proc(pfd)}/{base}", member, follow=False, strict=False)
        os.utime(base, ns=(int(member.mtime * 10**9),) * 2, dir_fd=pfd, follow_symlinks=False)
    elif member.islnk():
        _hard_link(state, member, pfd, base)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        device = os.makedev(member.devmajor, member.devminor) if not member.isfifo() else 0
        os.mknod(base, kind | 0o600, device, dir_fd=pfd)
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            _apply_metadata(fd, member, is_dir=False)
            os.utime(_proc(fd), ns=(int(member.mtime * 10**9),) * 2)
        finally:
            os.close(fd)
    else:
        raise Corrupt(f"invalid layer tar: {_display(parts)} has unsupported type {member.type!r}")


def _write_file(state: _Extraction, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, base: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags, 0o600, dir_fd=pfd)
    try:
        src = tf.extractfile(member)
        remaining = member.size
        while remaining > 0:
            chunk = src.read(min(_CHUNK, remaining))
            if not chunk:
                raise Corrupt(f"invalid layer tar: {member.name!r} is truncated")
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            remaining -= len(chunk)
        state.written += member.size
        _apply_metadata(fd, member, is_dir=False, xattrs_ok=True)
        os.utime(fd, ns=(int(member.mtime * 10**9),) * 2)
    finally:
        os.close(fd)


def _hard_link(state: _Extraction, member: tarfile.TarInfo, pfd: int, base: str) -> None:
    target = clean_name(member.linkname)
    if not target:
        raise Corrupt(f"invalid layer tar: hard link {member.name!r} has no target")
    tfd = _open_dir(state.root_fd, target[:-1], create=False)
    if tfd is None or _lstat(tfd, target[-1]) is None:
        if tfd is not None:
            os.close(tfd)
        raise Corrupt(f"invalid layer tar: hard link {member.name!r} to missing {member.linkname!r}")
    try:
        # follow_symlinks=False: a link to a symlink links the symlink itself
        os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
    except PermissionError:  # a directory, or protected_hardlinks
        raise Corrupt(f"invalid layer tar: cannot hard link {member.name!r} to {member.linkname!r}") from None
    finally:
        os.close(tfd)


def _apply_metadata(fd: int, member: tarfile.TarInfo, *, is_dir: bool, xattrs_ok: bool = False) -> None:
    """chown, then chmod (chown clears setuid), then xattrs, on the entry `fd` itself."""
    path = _proc(fd)  # works for O_PATH descriptors, follows nothing inside the layer
    if os.geteuid() == 0:
        os.chown(path, member.uid, member.gid)
    os.chmod(path, member.mode & 0o7777)
    _set_xattrs(path, member, follow=True, strict=xattrs_ok or is_dir)


def _set_xattrs(path: str, member: tarfile.TarInfo, *, follow: bool, strict: bool) -> None:
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX):
            continue
        name = key[len(XATTR_PAX_PREFIX) :]
        if name.startswith("trusted.overlay."):
            continue  # overlayfs metadata is ours to set, never the image's
        data = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(path, name, data, follow_symlinks=follow)
        except OSError as exc:
            # unsupported here, or user.* on a symlink/device (the kernel forbids it)
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (not strict and exc.errno == errno.EPERM):
                continue
            raise


def _set_dir_time(root_fd: int, parts: tuple[str, ...], mtime: int) -> None:
    try:
        fd = _open_dir(root_fd, parts, create=False)
    except Corrupt:
        return  # replaced by a later entry
    if fd is None:
        return
    try:
        os.utime(_proc(fd), ns=(int(mtime * 10**9),) * 2)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# changes
# --------------------------------------------------------------------------


def is_whiteout_device(st: os.stat_result) -> bool:
    """Whether `st` is an overlayfs whiteout (a 0/0 character device)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_dir(path: Path) -> bool:
    """Whether `path` carries overlayfs's opaque marker."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _children(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _stat_differs(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    if stat.S_ISDIR(new.st_mode):
        return False  # a directory's size/mtime move with its children, listed on their own
    return old.st_size != new.st_size or old.st_mtime_ns != new.st_mtime_ns


def _xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            pass
    return out


def tree_changes(old: Path | None, new: Path) -> list[Change]:
    """Changes from directory `old` (the parent layer's full tree, or None)
    to `new` (a full tree), as Docker's naive diff reports them.

    A path only in `new` is A (with all its descendants), only in `old` is D
    (its descendants are not listed), in both but different is C; a
    directory with any change inside is C too. Sorted by path.
    """
    changes: list[Change] = []

    def walk(rel: str, old_dir: Path | None, new_dir: Path):  # a generator: see iterate
        changed = False
        new_names = _children(new_dir)
        old_names = set(_children(old_dir)) if old_dir is not None else set()
        for name in sorted(old_names - set(new_names)):
            changes.append(Change("D", f"{rel}/{name}"))
            changed = True
        for name in new_names:
            path = f"{rel}/{name}"
            nst = os.lstat(new_dir / name)
            ost = os.lstat(old_dir / name) if name in old_names else None
            if ost is None:
                changes.append(Change("A", path))
                if stat.S_ISDIR(nst.st_mode):
                    yield walk(path, None, new_dir / name)
                changed = True
                continue
            both_dirs = stat.S_ISDIR(nst.st_mode) and stat.S_ISDIR(ost.st_mode)
            differs = _stat_differs(ost, nst) or _xattrs(old_dir / name) != _xattrs(new_dir / name)
            if both_dirs:
                index = len(changes)
                inner = yield walk(path, old_dir / name, new_dir / name)
                if differs or inner:
                    changes.insert(index, Change("C", path))
                    changed = True
            elif differs:
                changes.append(Change("C", path))
                if stat.S_ISDIR(nst.st_mode):  # a file became a directory
                    yield walk(path, None, new_dir / name)
                changed = True
        return changed

    iterate(walk("", old, new))  # no recursion on the Python stack: trees may be thousands deep
    return sorted(changes, key=lambda c: c.path.split("/"))


def lower_lookup(lowers: list[Path], rel: str) -> os.stat_result | None:
    """lstat of `rel` in the union of overlay layer dirs `lowers` (top first).

    Honours whiteout devices and opaque directories in the lowers.
    """
    parts = [p for p in rel.split("/") if p]
    for lower in lowers:
        path = lower
        opaque_above = False  # an opaque ancestor here hides the layers below
        for i, comp in enumerate(parts):
            path = path / comp
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break  # absent from this layer
            if is_whiteout_device(st):
                return None
            if i == len(parts) - 1:
                return st
            if not stat.S_ISDIR(st.st_mode):
                return None  # a non-directory here hides everything below it
            if is_opaque_dir(path):
                opaque_above = True
        if opaque_above:
            return None
    return None


def _upper_entries(directory: Path, whiteout_files: bool) -> tuple[list[tuple[str, os.stat_result | None]], bool]:
    """The entries of an upper directory as (name, lstat), lstat None for a
    whiteout of `name`; and whether the directory holds an opaque marker file.

    A 0/0 character device is a whiteout (the kernel's format). With
    `whiteout_files` (fuse-overlayfs's format, which it writes beside the
    kernel's), no name starting with ``.wh.`` is content: ``.wh..wh..opq``
    makes its directory opaque and ``.wh.NAME`` whites out NAME.
    """
    entries: list[tuple[str, os.stat_result | None]] = []
    marker = False
    for name in _children(directory):
        if whiteout_files and name.startswith(WHITEOUT_PREFIX):
            if name == OPAQUE_MARKER:
                marker = True
            elif not name[len(WHITEOUT_PREFIX):].startswith(WHITEOUT_PREFIX):
                entries.append((name[len(WHITEOUT_PREFIX):], None))
            continue
        st = os.lstat(directory / name)
        entries.append((name, None if is_whiteout_device(st) else st))
    if whiteout_files:  # one entry per name; beside a whiteout, NAME itself is content
        unique: dict[str, os.stat_result | None] = {}
        for name, st in entries:
            if unique.get(name) is None:
                unique[name] = st
        entries = sorted(unique.items())
    return entries, marker


def overlay_changes(upper: Path, lowers: list[Path], whiteout_files: bool = False) -> list[Change]:
    """Changes recorded in an overlayfs upper directory over `lowers` (top first).

    A whiteout is D; an opaque directory is C (A if new) and each child the
    lowers had but the upper lacks is D; anything else is A when the lowers
    lack it, else C (directories in the upper exist because something inside
    them changed). Sorted by path. `whiteout_files`: the upper may also hold
    fuse-overlayfs's whiteout and opaque files (see _upper_entries); the
    lowers are in the kernel's format (extract_layer's "overlay").
    """
    changes: list[Change] = []

    def walk(rel: str, directory: Path, below_new: bool):  # a generator: see iterate
        entries, marker = _upper_entries(directory, whiteout_files)
        if rel and (marker or is_opaque_dir(directory)) and not below_new:
            names = {name for name, _ in entries}
            for name in _children_of_lowers(lowers, rel):
                if name not in names:
                    changes.append(Change("D", f"{rel}/{name}"))
        for name, st in entries:
            path = f"{rel}/{name}"
            if st is None:
                if not below_new and lower_lookup(lowers, path) is not None:
                    changes.append(Change("D", path))
                continue
            new = below_new or lower_lookup(lowers, path) is None
            changes.append(Change("A" if new else "C", path))
            if stat.S_ISDIR(st.st_mode):
                yield walk(path, directory / name, new)

    iterate(walk("", upper, False))
    return sorted(changes, key=lambda c: c.path.split("/"))


def _children_of_lowers(lowers: list[Path], rel: str) -> set[str]:
    names: set[str] = set()
    candidates: set[str] = set()
    for lower in lowers:
        candidates.update(_children(lower / rel.lstrip("/")))
    for name in candidates:
        if lower_lookup(lowers, f"{rel}/{name}") is not None:
            names.add(name)
    return names


def overlay_upper_entries(upper: Path, whiteout_files: bool = False) -> tuple[list[Change], set[str]]:
    """What to export from an overlayfs upper dir: (entries, opaque dirs).

    Whiteouts become D entries, every other path an A entry; opaque
    directories are returned apart so that write_layer adds their marker.
    `whiteout_files`: as for overlay_changes.
    """
    entries: list[Change] = []
    opaque: set[str] = set()

    def walk(rel: str, directory: Path):  # a generator: see iterate
        for name, st in _upper_entries(directory, whiteout_files)[0]:
            path = f"{rel}/{name}"
            if st is None:
                entries.append(Change("D", path))
                continue
            entries.append(Change("A", path))
            if stat.S_ISDIR(st.st_mode):
                if is_opaque_dir(directory / name) or (
                        whiteout_files and os.path.lexists(directory / name / OPAQUE_MARKER)):
                    opaque.add(path)
                yield walk(path, directory / name)

    iterate(walk("", upper))
    return entries, opaque


# --------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------


def write_layer(root: Path, changes: Iterable[Change], out: BinaryIO, opaque_dirs: Iterable[str] = ()) -> None:
    """Write an uncompressed OCI layer tar of `changes`, read from `root`.

    A and C entries are taken from `root` (a full tree or an overlay upper
    dir); D entries become ``.wh.NAME``; each directory in `opaque_dirs`
    gets a ``.wh..wh..opq`` right after its own entry. Hard links among the
    written files stay links; owners, modes, devices and xattrs are kept;
    mtimes are truncated to seconds. Entries are sorted and user/group
    names left empty, so the same content always gives the same bytes.
    """
    opaque = set(opaque_dirs)
    seen_inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for change in sorted(changes, key=lambda c: c.path.split("/")):
            rel = change.path.strip("/")
            if not rel:
                continue
            if change.kind == "D":
                head, _, name = rel.rpartition("/")
                info = tarfile.TarInfo(f"{head}/{WHITEOUT_PREFIX}{name}" if head else WHITEOUT_PREFIX + name)
                info.mode = 0o644
                tf.addfile(info)
                continue
            _add_entry(tf, root, rel, seen_inodes)
            if "/" + rel in opaque:
                info = tarfile.TarInfo(f"{rel}/{OPAQUE_MARKER}")
                info.mode = 0o644
                tf.addfile(info)


def _add_entry(tf: tarfile.TarFile, root: Path, rel: str, seen_inodes: dict) -> None:
    path = root / rel
    st = os.lstat(path)
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    xattrs = {k: v for k, v in _xattrs(path).items() if not k.startswith("trusted.overlay.")}
    for name, value in xattrs.items():
        info.pax_headers[XATTR_PAX_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen_inodes:
            info.type = tarfile.LNKTYPE
            info.linkname = seen_inodes[key]
        else:
            if st.st_nlink > 1:
                seen_inodes[key] = rel
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                tf.addfile(info, f)
            return
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return  # sockets are not layer content
    tf.addfile(info)


def tree_size(root: Path) -> int:
    """Bytes of regular-file content under `root`, each inode counted once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, filenames in walk_files(root):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
