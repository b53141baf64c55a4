"""The ``fuse-overlayfs`` storage driver: layers stacked by fuse-overlayfs.

fuse-overlayfs (Debian package ``fuse-overlayfs``; what rootless podman
uses) is the kernel's overlay filesystem reimplemented in user space on
FUSE: one ``fuse-overlayfs`` process per mounted union serves it. It reads
and writes the kernel's on-disk format (whiteouts are 0/0 character
devices, opaque directories carry ``trusted.overlay.opaque``), so a layer
is extracted, diffed and exported exactly as an overlay upper directory,
with berth's public helpers (``berth.core.driverkit``).

Layout under the driver's home (berth gives it ``<root>/fuse-overlayfs``)::

    <dir>/diff      the layer's own files (an overlay upper directory)
    <dir>/lower     the ancestors' directory names, nearest first, ":"-separated
    <dir>/parent    the parent's id (absent for a base layer)
    <dir>/work      fuse-overlayfs's work directory (writable layers only)
    <dir>/merged    where mount() puts the union
    <dir>/mounts    the mount count every berth process shares (flock)

``<dir>`` is the layer id as ``driverkit.layer_dir_name`` writes it. A layer
is built under ``.tmp-*`` and renamed into place, so a layer under its real
name is complete. fuse-overlayfs runs with home as its working directory
and every directory option relative to it: no path needs escaping and a
deep stack stays short.

Options (``[storage.options]`` of the configuration): ``mount_program``,
the fuse-overlayfs to run (default: the one on PATH).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import BinaryIO, Mapping

from berth.core import driverkit
from berth.core.drivers import Change, StorageDriver
from berth.core.errors import BerthError, Conflict, InvalidArgument, NotFound

PROGRAM = "fuse-overlayfs"


def _program(options: Mapping[str, str] | None = None) -> str | None:
    chosen = (options or {}).get("mount_program") or PROGRAM
    return shutil.which(chosen)


class FuseOverlayfsDriver(StorageDriver):
    """Overlay layers served by fuse-overlayfs, one process per mounted union."""

    name = "fuse-overlayfs"
    independent_layers = True  # create() only records the parent's name

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        super().__init__(home, options)
        for key in self.options:
            if key != "mount_program":
                raise InvalidArgument(f"fuse-overlayfs: unknown storage option {key!r} (known: mount_program)")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if _program() is None:
            return "fuse-overlayfs is not installed (Debian: apt install fuse-overlayfs)"
        if "fuse" not in driverkit.kernel_filesystems():
            return "the kernel has no fuse filesystem (try: modprobe fuse)"
        if not os.path.exists("/dev/fuse"):
            return "/dev/fuse does not exist"
        if os.geteuid() != 0:
            return f"keeping layers' owners and device nodes needs root (running as uid {os.geteuid()})"
        return None

    # ------------------------------------------------------------ layout

    def _dir(self, id: str) -> Path:
        return self.home / driverkit.layer_dir_name(id)

    def _lowers(self, id: str) -> list[str]:
        """The ancestors' directory names (relative to home), nearest first."""
        try:
            text = (self._dir(id) / "lower").read_text().strip()
        except FileNotFoundError:
            return []
        return text.split(":") if text else []

    def _require(self, id: str) -> Path:
        if not self.exists(id):
            raise NotFound(f"fuse-overlayfs: layer {id} does not exist")
        return self._dir(id)

    # ------------------------------------------------------------ lifecycle

    def create(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=False)

    def create_rw(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=True)

    def _make(self, id: str, parent: str | None, writable: bool) -> None:
        final = self._dir(id)
        if self.exists(id):
            raise Conflict(f"fuse-overlayfs: layer {id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"fuse-overlayfs: parent layer {parent} does not exist")
        if os.path.lexists(final):  # half made by a crash
            self.remove(id)
        self._sweep()
        tmp = self.home / f".tmp-{final.name}-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir(mode=0o700)
        try:
            (tmp / "diff").mkdir(mode=0o755)
            (tmp / "merged").mkdir(mode=0o700)
            if writable:
                (tmp / "work").mkdir(mode=0o700)
            if parent is not None:
                (tmp / "parent").write_text(parent)
                (tmp / "lower").write_text(":".join([self._dir(parent).name, *self._lowers(parent)]))
            os.rename(tmp, final)
        except BaseException:
            driverkit.remove_tree(tmp, ignore_errors=True)
            raise

    def apply_diff(self, id: str, diff: BinaryIO) -> int:
        upper = self._require(id) / "diff"
        try:
            return driverkit.extract_layer(driverkit.decompressed(diff), upper, "overlay")
        except BaseException:
            driverkit.remove_tree(upper)  # back to the state after create
            upper.mkdir(mode=0o755)
            raise

    def exists(self, id: str) -> bool:
        return (self._dir(id) / "diff").is_dir()

    def remove(self, id: str) -> None:
        d = self._dir(id)
        if not os.path.lexists(d):
            return
        for point in driverkit.mounts_under(d):
            driverkit.unmount(point)
        trash = self.home / f".trash-{d.name}-{os.getpid()}-{time.monotonic_ns()}"
        os.rename(d, trash)  # gone under its name at once: a crash leaves only trash
        driverkit.remove_tree(trash)

    def layer_ids(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))

    def _sweep(self) -> None:
        """Delete what a crashed create or remove left (.tmp-* of dead processes, .trash-*)."""
        for e in os.scandir(self.home):
            if e.name.startswith(".trash-") or (e.name.startswith(".tmp-") and not _alive(e.name.split("-")[-2])):
                if not driverkit.mounts_under(e.path):
                    driverkit.remove_tree(e.path, ignore_errors=True)

    # ------------------------------------------------------------ mounts

    def mount(self, id: str) -> Path:
        d = self._require(id)
        lowers = self._lowers(id)
        if not lowers:
            return d / "diff"  # a base layer needs no union
        merged = d / "merged"
        with driverkit.locked_counter(d / "mounts") as count:
            if count[0] > 0 and _served(merged):
                count[0] += 1
                return merged
            if driverkit.is_mounted(merged):  # left by a crash, or its process died: start afresh
                driverkit.unmount(merged)
            lower = ":".join(f"{name}/diff" for name in lowers)  # relative to home, fuse-overlayfs's cwd
            if (d / "work").is_dir():
                options = f"lowerdir={lower},upperdir={d.name}/diff,workdir={d.name}/work"
            else:  # an image layer: a read-only union of itself and its ancestors
                options = f"lowerdir={d.name}/diff:{lower}"
            self._run_mount_program(options, merged, id)
            count[0] = 1
        return merged

    def _run_mount_program(self, options: str, merged: Path, id: str) -> None:
        program = _program(self.options)
        if program is None:
            raise BerthError("fuse-overlayfs: the fuse-overlayfs program is not installed")
        # dev: device nodes of an image work in the union, as with the kernel's overlay
        # (fuse-overlayfs adds default_permissions and allow_other itself when run as root).
        argv = [program, "-o", options + ",dev", os.fspath(merged.relative_to(self.home))]
        # It daemonizes once the union is mounted (stdio to /dev/null, its own session),
        # so it outlives this berth process; its working directory resolves the options.
        done = subprocess.run(argv, cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if done.returncode != 0 or not driverkit.is_mounted(merged):
            lines = [line for line in done.stderr.splitlines() if "unknown argument ignored" not in line]
            why = lines[-1] if lines else f"exit status {done.returncode}"
            raise BerthError(f"fuse-overlayfs: mounting layer {id}: {why}")

    def unmount(self, id: str) -> None:
        d = self._dir(id)
        if not (d / "merged").is_dir() or not self._lowers(id):
            return
        with driverkit.locked_counter(d / "mounts") as count:
            count[0] -= 1
            if count[0] <= 0:
                count[0] = 0
                # lazy, as Docker: a process still inside keeps it until it leaves; the
                # fuse-overlayfs process exits when the kernel drops the union
                driverkit.unmount(d / "merged")

    def cleanup(self) -> None:
        for point in driverkit.mounts_under(self.home):
            driverkit.unmount(point)
        for counter in self.home.glob("*/mounts"):
            counter.unlink(missing_ok=True)

    # ------------------------------------------------------------ contents

    def _lower_dirs(self, id: str) -> list[Path]:
        return [self.home / name / "diff" for name in self._lowers(id)]

    def changes(self, id: str) -> list[Change]:
        d = self._require(id)
        return driverkit.overlay_changes(d / "diff", self._lower_dirs(id), whiteout_files=True)

    def export_diff(self, id: str, out: BinaryIO) -> None:
        upper = self._require(id) / "diff"
        entries, opaque = driverkit.overlay_upper_entries(upper, whiteout_files=True)
        driverkit.write_layer(upper, entries, out, opaque)

    def usage(self, id: str) -> int:
        return driverkit.tree_size(self._require(id) / "diff")

    def status(self) -> list[tuple[str, str]]:
        fstype = driverkit.filesystem_type(self.home)
        return [
            ("Backing Filesystem", driverkit.backing_filesystem_name(fstype)),
            ("Mount Program", _program(self.options) or "(not installed)"),
            ("Supports d_type", "true"),
        ]

    def metadata(self, id: str) -> dict[str, str]:
        d = self._require(id)
        data = {"UpperDir": str(d / "diff"), "MergedDir": str(d / "merged")}
        if (d / "work").is_dir():
            data["WorkDir"] = str(d / "work")
        lowers = self._lower_dirs(id)
        if lowers:
            data["LowerDir"] = ":".join(map(str, lowers))
        return data


def _served(merged: Path) -> bool:
    """Whether a live fuse-overlayfs serves `merged` (a killed one leaves a mount
    whose every access fails with ENOTCONN)."""
    if not driverkit.is_mounted(merged):
        return False
    try:
        os.stat(merged)
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV):
            return False
        raise
    return True


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
