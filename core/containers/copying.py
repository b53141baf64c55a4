"""`berth cp`: files between a container and the host, as Docker copies them.

The container side runs in a forked child that sees the container's files
as its processes do, mounts included:

- running: the child joins the container's mount namespace (setns), whose
  root is the container's root: binds, volumes, tmpfs, /etc/hosts,
  /etc/resolv.conf and /etc/hostname, read-only where the container's are;
- stopped: the child takes a private mount namespace (nothing propagates
  back), binds the container's root read-only when it is --read-only, then
  its bind mounts, volumes and run-directory /etc files as a start would,
  and chroots into it.

Either way every path and every symlink is resolved by the kernel inside
the container's root, never outside it. Nothing is imported and no user or
group name is looked up once the child is in there (a hostile image's
libraries and modules must never load into a root process: CVE-2019-14271).

Data crosses as a tar stream, as through Docker's archive API; `-` is that
stream on stdout or stdin. The rules for names, links and trailing slashes
are those of Docker's pkg/archive/copy.go (CopyInfoSourcePath,
CopyInfoDestinationPath, PrepareArchiveCopy, RebaseArchiveEntries).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections import namedtuple

from berth.core.errors import BerthError, FailedPrecondition, InvalidArgument, NotFound

_MAX_LINKS = 10  # CopyInfoDestinationPath's limit

# Docker's archive.CopyInfo: rebase_name is the name the copy takes when a
# link was followed (-L) or a trailing slash resolved it.
CopyInfo = namedtuple("CopyInfo", "path exists is_dir rebase_name", defaults=(False, False, ""))


# -- Docker's rules (pure: used on the host, and inside the container's root) --------------


def split_dir_entry(path: str) -> tuple[str, str]:
    """SplitPathDirEntry: "/a/b/" -> ("/a", "b"); "/a/." -> ("/a", ".")."""
    cleaned = posixpath.normpath(path)
    if path == "." or path.endswith("/."):
        cleaned += "/."
    return posixpath.dirname(cleaned) or ".", posixpath.basename(cleaned)


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or path == "." or path.endswith("/.")


def _preserve_trailing(cleaned: str, original: str) -> str:
    """PreserveTrailingDotOrSeparator."""
    if (original == "." or original.endswith("/.")) and not cleaned.endswith("/."):
        cleaned = cleaned.rstrip("/") + "/."
    elif original.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def source_info(path: str, follow: bool) -> CopyInfo:
    """CopyInfoSourcePath: the last component is a link copied as a link, unless `follow`."""
    if follow:
        resolved = os.path.realpath(path)
        rebase = split_dir_entry(path)[1]
        resolved = _preserve_trailing(resolved, path)
    else:
        parent, base = posixpath.split(path)
        resolved = posixpath.join(os.path.realpath(parent or "."), base)
        rebase = posixpath.basename(path.rstrip("/")) if base == "" else ""
        resolved = _preserve_trailing(resolved, path)
    st = os.lstat(resolved)
    if rebase == split_dir_entry(resolved)[1]:
        rebase = ""
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def destination_info(path: str) -> CopyInfo:
    """CopyInfoDestinationPath: a link at `path` is followed (never replaced); the path
    may be missing when its parent is a directory."""
    original = path
    for _ in range(_MAX_LINKS + 1):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return _missing_destination(path)
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        if not target.startswith("/"):
            target = posixpath.join(split_dir_entry(path)[0], target)
        path = target
    raise InvalidArgument(f"too many symlinks in {original}")


def _missing_destination(path: str) -> CopyInfo:
    """A destination yet to be made: its parent must be a directory."""
    parent = split_dir_entry(path)[0]
    try:
        parent_is_dir = stat.S_ISDIR(os.stat(parent).st_mode)
    except FileNotFoundError:
        raise NotFound(f"lstat {parent}: no such file or directory") from None
    if not parent_is_dir:
        raise FailedPrecondition(f"{parent}: not a directory")
    return CopyInfo(path)


def prepare(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """PrepareArchiveCopy: (directory to extract into, (old, new) top name or None)."""
    dst_dir, dst_base = split_dir_entry(dst.path)
    src_base = src.rebase_name or split_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise FailedPrecondition("cannot copy directory")
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise NotFound("no such directory")
    return dst_dir, (src_base, dst_base)


# -- tar streams ------------------------------------------------------------------------------


def write_tar(path: str, arcname: str, fileobj) -> None:
    """A tar of `path` (recursively) whose top entry is `arcname` ("." for a directory's contents).

    A running container's /proc and /sys (kernel views, not files) are left out of a copy
    that merely passes through them (`cp CTR:/ ...`), as Docker's copy of the root does."""
    skip = _kernel_filesystems(path)

    def keep(info: tarfile.TarInfo):
        if skip and info.isdir():
            host = os.path.join(path, os.path.relpath(info.name, arcname))
            if os.lstat(host).st_dev in skip:
                return None
        return info

    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(path, arcname=arcname, recursive=True, filter=keep)


def _kernel_filesystems(path: str) -> set[int]:
    """Devices of /proc and /sys where they are mounted and `path` is not inside them."""
    out = set()
    try:
        root_dev = os.lstat("/").st_dev
        source_dev = os.stat(path).st_dev
    except OSError:
        return out
    for mount_point in ("/proc", "/sys"):
        try:
            dev = os.lstat(mount_point).st_dev
        except OSError:
            continue
        if dev != root_dev and dev != source_dev:
            out.add(dev)
    return out


def _rebase(name: str, rename: tuple[str, str] | None) -> str:
    """RebaseArchiveEntries: the first component `old` becomes `new`."""
    if rename is None:
        return name
    old, new = rename
    if name == old or name == old + "/":
        return new
    if name.startswith(old + "/"):
        return new + name[len(old):]
    return name


def extract(fileobj, decide, owner: tuple[int, int] | None = None) -> bool:
    """Untar into a directory as Docker's Untar; False when the stream held nothing.

    decide(first TarInfo) -> (directory, rename) places the copy (see `prepare`);
    entries are owned by `owner` (or as the archive says); a file or link replaces a
    file or link, never a directory (NoOverwriteDirNonDir); nothing lands outside the
    directory.
    """
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:
        first = tar.next()
        if first is None:
            return False
        dest_dir, rename = decide(first)
        tar.extractall(dest_dir, numeric_owner=True, filter=_placer(dest_dir, rename, owner))
    return True


def _placer(dest_dir: str, rename, owner):
    real_dest = os.path.realpath(dest_dir)

    def place(member: tarfile.TarInfo, _path: str) -> tarfile.TarInfo:
        member.name = _rebase(member.name, rename)
        if member.islnk():
            member.linkname = _rebase(member.linkname, rename)
        if owner is not None:
            member.uid, member.gid = owner
        member.uname = member.gname = ""
        name = posixpath.normpath(member.name)
        if name.startswith("/") or name == ".." or name.startswith("../"):
            raise InvalidArgument(f"invalid tar entry {member.name!r}: outside the destination")
        target = os.path.join(real_dest, name)
        parent = os.path.realpath(os.path.dirname(target))
        if parent != real_dest and not parent.startswith(real_dest.rstrip("/") + "/"):
            raise InvalidArgument(f"invalid tar entry {member.name!r}: outside the destination")
        target = os.path.join(parent, os.path.basename(target))
        if name != "." and os.path.lexists(target):
            is_dir = os.path.isdir(target) and not os.path.islink(target)
            if is_dir and not member.isdir():
                raise FailedPrecondition(f"cannot overwrite directory {target!r} with non-directory {name!r}")
            if not is_dir and member.isdir():
                raise FailedPrecondition(f"cannot overwrite non-directory {target!r} with directory {name!r}")
            if not is_dir:
                os.unlink(target)
        return member

    return place


# -- the container's side ---------------------------------------------------------------------


class ContainerFiles:
    """The container's files seen from a forked child; see the module docstring.

    `with ContainerFiles(service, container) as view: view.fork(work).send(arg)`
    runs work(arg) in that child and returns its (JSON) result.
    """

    def __init__(self, service, container):
        self.service = service
        self.container = container
        self._stack = None
        self._setup = None

    def __enter__(self):
        import contextlib

        c = self.container
        self._stack = contextlib.ExitStack()
        if c.running and c.pid:
            try:
                ns = os.open(f"/proc/{c.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                ns = None
            if ns is not None:
                self._stack.callback(os.close, ns)
                self._setup = lambda: _join_namespace(ns)
                return self
        self._stack.__enter__()
        try:
            root = str(self._stack.enter_context(self.service.mounted(c)))
            mounts = [m for m in self.service.engine.volumes.mounts_for(c, root) if m.type == "bind"]
            self._stack.callback(self.service.engine.volumes.release, c)
            run_dir = self.service.run_dir(c.id)
            files = {f"/etc/{name}": str(run_dir / name) for name in ("hostname", "hosts", "resolv.conf")
                     if (run_dir / name).is_file()}
        except BaseException:
            self._stack.close()
            raise
        readonly = bool(c.host_config.get("ReadonlyRootfs"))
        self._setup = lambda: _build_view(root, mounts, files, readonly)
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def fork(self, work, *, child_closes=(), parent_closes=()):
        """A plumbing.forked.Forked child inside the container's files, to run work(arg) on its
        send(arg). `child_closes` are closed in the child first, `parent_closes` in the parent
        once the child has them."""
        from berth.core.plumbing.forked import Forked

        setup = self._setup

        def enter():
            for fd in child_closes:
                try:
                    os.close(fd)
                except OSError as exc:  # the parent closed it before it forked us: nothing to close here
                    if exc.errno != errno.EBADF:
                        raise
            tarfile.pwd = tarfile.grp = None  # no name lookups inside the container
            setup()

        worker = Forked(enter, work)
        for fd in parent_closes:
            os.close(fd)
        return worker


def _join_namespace(ns_fd: int) -> None:  # runs in the child
    from berth.core.runtime import syscalls as sc

    sc.setns(ns_fd, sc.CLONE_NEWNS)  # root and cwd become the namespace's: the container's root
    os.chdir("/")


def _build_view(root: str, mounts, files: dict, readonly: bool) -> None:  # runs in the child
    from berth.core.runtime import filesystem
    from berth.core.runtime import syscalls as sc
    from berth.core.runtime.spec import Mount

    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    root = os.path.realpath(root)
    sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)
    if readonly:
        sc.mount(None, root, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
    everything = list(mounts) + [Mount(destination=dest, source=src, type="bind") for dest, src in files.items()]
    everything.sort(key=lambda m: len([p for p in m.destination.split("/") if p]))
    for m in everything:
        filesystem.mount_one(root, m)
    os.chroot(root)
    os.chdir("/")


def container_path(path: str) -> str:
    """ResolvePath's absPath: absolute in the container, trailing "/" or "/." kept."""
    return _preserve_trailing(posixpath.normpath("/" + path.lstrip("/")), path)


def read_only_message(container, path: str) -> str:
    """What Docker says when a copy into `path` meets a read-only filesystem."""
    for m in container.mounts:
        dest = m["Destination"].rstrip("/") + "/"
        if (path.rstrip("/") + "/").startswith(dest) and not m.get("RW", True):
            return "mounted volume is marked read-only"
    return "container rootfs is marked read-only"


def _os_error(exc: OSError, path: str, ref: str, read_only: str = "") -> BerthError:
    if exc.errno == errno.ENOENT:
        return NotFound(f"Could not find the file {path} in container {ref}")
    if exc.errno == errno.ENOTDIR:
        return FailedPrecondition(f"{path}: not a directory")
    if exc.errno == errno.EROFS and read_only:
        return FailedPrecondition(read_only)
    return BerthError(f"{exc.filename or path}: {exc.strerror or exc}")


# -- the two directions -----------------------------------------------------------------------


def copy_from(service, ref: str, path: str, dest: str, *, follow: bool = False, stream_fd: int = 1,
              other_end: int | None = None, on_fork=None) -> None:
    """`cp CTR:path dest`; dest "-" writes the tar stream to `stream_fd` (stdout). `other_end`:
    the reading end of that pipe, closed in the child (so a reader that goes stops it); the
    caller keeps it open until `on_fork()` says the child has it."""
    import threading

    container = service.get(ref)
    cpath = container_path(path)
    to_stdout = dest == "-"
    if not to_stdout:
        dst = destination_info(dest)  # on the host: errors before any work
    read_fd, write_fd = (None, stream_fd) if to_stdout else os.pipe2(os.O_CLOEXEC)

    def work(_):  # in the container's files
        try:
            src = source_info(cpath, follow)
            with os.fdopen(write_fd, "wb", closefd=not to_stdout) as out:
                write_tar(src.path, _arcname(src), out)
        except OSError as exc:
            raise _os_error(exc, path, ref) from None
        return src.is_dir

    with ContainerFiles(service, container) as view:
        if to_stdout:
            worker = view.fork(work, child_closes=[] if other_end is None else [other_end])
            if on_fork is not None:
                on_fork()
            worker.send()
            return
        worker = view.fork(work, child_closes=[read_fd], parent_closes=[write_fd])
        outcome: dict = {}
        thread = threading.Thread(target=_keep_outcome, args=(outcome, worker.send), daemon=True)
        thread.start()
        try:
            with os.fdopen(read_fd, "rb") as stream:
                extract(stream, lambda first: prepare(CopyInfo(first.name, True, first.isdir()), dst),
                        (os.getuid(), os.getgid()))
        except (tarfile.ReadError, BrokenPipeError):
            pass  # the child failed: its error follows
        finally:
            thread.join()
        if "error" in outcome:
            raise outcome["error"]


def copy_to(service, ref: str, src: str, path: str, *, follow: bool = False, archive: bool = False,
            stream_fd: int = 0, other_end: int | None = None, on_fork=None) -> None:
    """`cp src CTR:path`; src "-" reads a tar stream from `stream_fd` (stdin) and extracts it
    into path, which must be a directory. `other_end`: the writing end of that pipe, closed in
    the child (so it sees the end of the stream); the caller keeps it open until `on_fork()`."""
    import threading

    container = service.get(ref)
    cpath = container_path(path)
    from_stdin = src == "-"
    if not from_stdin:
        try:
            info = source_info(src, follow)
        except OSError as exc:
            raise NotFound(f"lstat {src}: {exc.strerror.lower() if exc.strerror else exc}") from None
    owner = None if archive else (0, 0)
    read_only = read_only_message(container, cpath)
    read_fd, write_fd = (stream_fd, None) if from_stdin else os.pipe2(os.O_CLOEXEC)

    def work(_):  # in the container's files
        try:
            dst = destination_info(cpath)
            if from_stdin:
                if not dst.is_dir:
                    raise FailedPrecondition(f'destination "{ref}:{path}" must be a directory')
                place = (dst.path, None)
            else:
                place = prepare(info, dst)
            with os.fdopen(read_fd, "rb", closefd=not from_stdin) as stream:
                extract(stream, lambda _first: place, owner)
        except OSError as exc:
            raise _os_error(exc, path, ref, read_only) from None
        except tarfile.TarError as exc:
            raise InvalidArgument(f"invalid tar stream: {exc}") from None

    with ContainerFiles(service, container) as view:
        if from_stdin:
            worker = view.fork(work, child_closes=[] if other_end is None else [other_end])
            if on_fork is not None:
                on_fork()
            worker.send()
            return
        worker = view.fork(work, child_closes=[write_fd], parent_closes=[read_fd])
        thread = threading.Thread(target=_send_tar, args=(info, write_fd), daemon=True)
        thread.start()
        try:
            worker.send()
        finally:
            thread.join()


def stat_path(service, ref: str, path: str) -> dict:
    """Docker's PathStat of `path` in the container (name, size, Go's FileMode bits, mtime,
    linkTarget), looked at from inside its files as a copy would; the last link is not followed."""
    container = service.get(ref)
    cpath = container_path(path)

    def work(_):  # in the container's files
        try:
            st = os.lstat(cpath)
            link = os.readlink(cpath) if stat.S_ISLNK(st.st_mode) else ""
        except OSError as exc:
            raise _os_error(exc, path, ref) from None
        return {"mode": st.st_mode, "size": st.st_size, "mtime": st.st_mtime, "link": link}

    with ContainerFiles(service, container) as view:
        found = view.fork(work).send()
    return {"name": posixpath.basename(cpath.rstrip("/")) or "/", "size": found["size"],
            "mode": go_file_mode(found["mode"]), "mtime": _rfc3339(found["mtime"]), "linkTarget": found["link"]}


def go_file_mode(mode: int) -> int:
    """An st_mode as Go's os.FileMode (what Docker's API carries)."""
    out = mode & 0o777
    for test, bit in ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
                      (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26), (stat.S_ISCHR, (1 << 26) | (1 << 21))):
        if test(mode):
            out |= bit
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & flag:
            out |= bit
    return out


def _rfc3339(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def _arcname(info: CopyInfo) -> str:
    name = info.rebase_name or split_dir_entry(info.path)[1]
    return "." if name in ("", "/") else name


def _send_tar(info: CopyInfo, write_fd: int) -> None:
    try:
        with os.fdopen(write_fd, "wb") as out:
            write_tar(info.path, _arcname(info), out)
    except BrokenPipeError:
        pass  # the container side gave up: its error is the one reported


def _keep_outcome(outcome: dict, call) -> None:
    try:
        outcome["result"] = call()
    except BerthError as exc:
        outcome["error"] = exc
