"""overlay2: layers stacked by the kernel's overlay filesystem, laid out as Docker does.

The layout (``<dir>/diff``, ``link``, ``lower``, ``parent``, ``work``,
``merged``, ``mounts``; ``l/<short>`` links) and everything but the mount
itself come from ``berth.core.driverkit.OverlayDriver``. Short links keep
the lowerdir option, given relative to home, under the page size limit of
mount(2) even with 100+ layers.
"""

from __future__ import annotations

import os
from pathlib import Path

from berth.core import driverkit  # it imports the layer-tar code (tarfile) only where used
from berth.core.errors import Unsupported

_MAX_OPTIONS = os.sysconf("SC_PAGESIZE") - 1
_OVERLAY_PARAMS = Path("/sys/module/overlay/parameters")


class Overlay2Driver(driverkit.OverlayDriver):
    """The default driver: needs overlay in the kernel, and a home not itself on overlay."""

    name = "overlay2"

    def __init__(self, home, options=None):
        fstype = driverkit.filesystem_type(home)  # checked first: refusing leaves nothing behind
        if fstype == "overlay":
            raise Unsupported(f"overlay2: {Path(home)} is on an overlay filesystem, which cannot hold overlay layers")
        self.backing_filesystem = fstype
        super().__init__(home, options)

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if "overlay" not in driverkit.kernel_filesystems():
            return "the kernel has no overlay filesystem (try: modprobe overlay)"
        return None

    def mount_union(self, merged: Path, options: str, id: str) -> None:
        options += self._extra_options()
        if len(options) > _MAX_OPTIONS:
            ancestors = len(self._lowers(id))
            raise Unsupported(f"overlay2: layer {id} has too many ancestors ({ancestors}) to mount")
        _mount_overlay(self.home, merged, options, id)

    @staticmethod
    def _extra_options() -> str:
        # Off whatever the kernel's defaults: an index ties a lower to one upper,
        # and redirects/metacopy would hide changes from export_diff.
        extra = ""
        for param in ("index", "redirect_dir", "metacopy"):
            if (_OVERLAY_PARAMS / param).exists():
                extra += f",{param}=off"
        return extra

    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", driverkit.backing_filesystem_name(self.backing_filesystem)),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "true"),
            ("Using metacopy", "false"),
        ]


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
