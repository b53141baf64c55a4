"""The ``fuse-overlayfs`` storage driver: layers stacked by fuse-overlayfs.

fuse-overlayfs (Debian package ``fuse-overlayfs``; what rootless podman
uses) is the kernel's overlay filesystem reimplemented in user space on
FUSE: one ``fuse-overlayfs`` process per mounted union serves it. It reads
and writes the kernel's on-disk format (whiteouts are 0/0 character
devices, opaque directories carry ``trusted.overlay.opaque``), and may also
write whiteouts as files (``.wh.NAME``, ``.wh..wh..opq``), so a layer is
extracted, diffed and exported as an overlay upper directory whose
whiteout files count too.

The layout (overlay2's: ``<dir>/diff``, ``link``, ``lower``, ``parent``,
``work``, ``merged``, ``mounts``; ``l/<short>`` links), layers, changes,
export and the cross-process mount count all come from berth's public
``berth.core.driverkit.OverlayDriver``; this module only starts
fuse-overlayfs where overlay2 calls mount(2). fuse-overlayfs runs with home
as its working directory and every directory option relative to it: no
path needs escaping and a deep stack stays short.

Options (``[storage.options]`` of the configuration): ``mount_program``,
the fuse-overlayfs to run (default: the one on PATH).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from berth.core import driverkit
from berth.core.errors import BerthError, InvalidArgument

PROGRAM = "fuse-overlayfs"


def _program(options: Mapping[str, str] | None = None) -> str | None:
    chosen = (options or {}).get("mount_program") or PROGRAM
    return shutil.which(chosen)


class FuseOverlayfsDriver(driverkit.OverlayDriver):
    """Overlay layers served by fuse-overlayfs, one process per mounted union."""

    name = "fuse-overlayfs"
    whiteout_files = True  # fuse-overlayfs may write .wh. files beside the kernel's whiteouts

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        for key in options or {}:
            if key != "mount_program":
                raise InvalidArgument(f"fuse-overlayfs: unknown storage option {key!r} (known: mount_program)")
        super().__init__(home, options)

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

    def mount_union(self, merged: Path, options: str, id: str) -> None:
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

    def union_is_served(self, merged: Path) -> bool:
        """Whether a live fuse-overlayfs serves `merged` (a killed one leaves a
        mount whose every access fails with ENOTCONN)."""
        if not driverkit.is_mounted(merged):
            return False
        try:
            os.stat(merged)
        except OSError as exc:
            if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV):
                return False
            raise
        return True

    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", driverkit.backing_filesystem_name(driverkit.filesystem_type(self.home))),
            ("Mount Program", _program(self.options) or "(not installed)"),
            ("Supports d_type", "true"),
        ]
