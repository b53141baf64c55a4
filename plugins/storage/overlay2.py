"""overlay2: layers stacked by the kernel's overlay filesystem, laid out as Docker does.

Under home::

    <dir>/diff     the layer's own files (an overlay upper dir: whiteouts are
                   0/0 character devices, opaque dirs carry trusted.overlay.opaque)
    <dir>/link     the layer's short name; l/<short> -> ../<dir>/diff
    <dir>/lower    the ancestors' short links, nearest first ("l/A:l/B")
    <dir>/parent   the parent's id (absent for a base layer)
    <dir>/work     overlay's work dir (writable layers only)
    <dir>/merged   where mount() puts the union
    <dir>/mounts   the mount count, shared by every berth process (flock)

Short links keep the lowerdir option, given relative to home, under the
page size limit of mount(2) even with 100+ layers.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from berth.core import driverkit  # it imports the layer-tar code (tarfile) only where used
from berth.core.drivers import Change, StorageDriver
from berth.core.errors import Conflict, InvalidArgument, NotFound, Unsupported
from berth.core.plumbing.ids import random_choice, random_hex

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import BinaryIO

_LINK_ALPHABET = string.ascii_uppercase + string.digits
_MAX_OPTIONS = os.sysconf("SC_PAGESIZE") - 1
_OVERLAY_PARAMS = Path("/sys/module/overlay/parameters")


class Overlay2Driver(StorageDriver):
    """The default driver: needs overlay in the kernel, and a home not itself on overlay."""

    name = "overlay2"
    independent_layers = True  # create() only links the parent's diff by name

    def __init__(self, home, options=None):
        super().__init__(home, options)
        fstype = driverkit.filesystem_type(self.home)  # checked first: refusing leaves nothing behind
        if fstype == "overlay":
            raise Unsupported(f"overlay2: {self.home} is on an overlay filesystem, which cannot hold overlay layers")
        self.backing_filesystem = fstype
        (self.home / "l").mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if "overlay" not in driverkit.kernel_filesystems():
            return "the kernel has no overlay filesystem (try: modprobe overlay)"
        return None

    # ------------------------------------------------------------ layout

    def _dir(self, id: str) -> Path:
        name = driverkit.layer_dir_name(id)
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
            raise NotFound(f"overlay2: layer {id} does not exist")
        return self._dir(id)

    # ------------------------------------------------------------ lifecycle

    def create(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=False)

    def create_rw(self, id: str, parent: str | None) -> None:
        self._make(id, parent, writable=True)

    def _make(self, id: str, parent: str | None, writable: bool) -> None:
        final = self._dir(id)
        if self.exists(id):
            raise Conflict(f"overlay2: layer {id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFound(f"overlay2: parent layer {parent} does not exist")
        if os.path.lexists(final):  # half made by a crash
            self.remove(id)
        tmp = self.home / f".tmp-{final.name}-{random_hex(4)}"
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
        d = self._dir(id)
        return (d / "diff").is_dir() and (d / "link").is_file()

    def remove(self, id: str) -> None:
        d = self._dir(id)
        if not os.path.lexists(d):
            return
        for point in driverkit.mounts_under(d):
            driverkit.unmount(Path(point))
        try:
            (self.home / "l" / (d / "link").read_text().strip()).unlink(missing_ok=True)
        except (FileNotFoundError, ValueError):
            pass
        driverkit.remove_tree(d)

    def layer_ids(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if e.name != "l" and not e.name.startswith(".") and e.is_dir(follow_symlinks=False))

    # ------------------------------------------------------------ mounts

    def mount(self, id: str) -> Path:
        d = self._require(id)
        writable = (d / "work").is_dir()
        lowers = self._lowers(id)
        if not lowers:
            return d / "diff"  # a base layer needs no union
        merged = d / "merged"
        with driverkit.locked_counter(d / "mounts") as count:
            if count[0] > 0 and driverkit.is_mounted(merged):
                count[0] += 1
                return merged
            if writable:
                options = f"lowerdir={':'.join(lowers)},upperdir={d.name}/diff,workdir={d.name}/work"
            else:  # an image layer: a read-only union of itself and its ancestors
                options = f"lowerdir={':'.join([self._link(id), *lowers])}"
            options += self._extra_options()
            if len(options) > _MAX_OPTIONS:
                raise Unsupported(f"overlay2: layer {id} has too many ancestors ({len(lowers)}) to mount")
            if driverkit.is_mounted(merged):  # left over by a crash: start afresh
                driverkit.unmount(merged)
            _mount_overlay(self.home, merged, options, id)
            count[0] = 1
        return merged

    @staticmethod
    def _extra_options() -> str:
        # Off whatever the kernel's defaults: an index ties a lower to one upper,
        # and redirects/metacopy would hide changes from export_diff.
        extra = ""
        for param in ("index", "redirect_dir", "metacopy"):
            if (_OVERLAY_PARAMS / param).exists():
                extra += f",{param}=off"
        return extra

    def unmount(self, id: str) -> None:
        d = self._dir(id)
        if not (d / "merged").is_dir() or not self._lowers(id):
            return
        with driverkit.locked_counter(d / "mounts") as count:
            count[0] -= 1
            if count[0] <= 0:
                count[0] = 0
                driverkit.unmount(d / "merged")

    def cleanup(self) -> None:
        for point in driverkit.mounts_under(self.home):
            driverkit.unmount(Path(point))
        for counter in self.home.glob("*/mounts"):
            counter.unlink(missing_ok=True)

    # ------------------------------------------------------------ contents

    def changes(self, id: str) -> list[Change]:
        d = self._require(id)
        return driverkit.overlay_changes(d / "diff", self._lower_dirs(id))

    def export_diff(self, id: str, out: BinaryIO) -> None:
        upper = self._require(id) / "diff"
        entries, opaque = driverkit.overlay_upper_entries(upper)
        driverkit.write_layer(upper, entries, out, opaque)

    def usage(self, id: str) -> int:
        return driverkit.tree_size(self._require(id) / "diff")

    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", driverkit.backing_filesystem_name(self.backing_filesystem)),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "true"),
            ("Using metacopy", "false"),
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


def _mount_overlay(home: Path, merged: Path, options: str, id: str) -> None:
    """mount(2) the union with cwd at home: the lowerdir paths are relative to it
    (short options for deep stacks), and no mount(8) process is started."""
    from berth.core.errors import BerthError
    from berth.core.runtime import syscalls

    back = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(home)
        syscalls.mount("overlay", str(merged), "overlay", 0, options)
    except OSError as exc:
        raise BerthError(f"overlay2: mounting layer {id}: {exc.strerror}") from None
    finally:
        os.fchdir(back)
        os.close(back)

