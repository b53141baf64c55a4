"""btrfs: each layer a subvolume, a child layer a snapshot of its parent.

The driver's home must be on a btrfs filesystem; the constructor checks and
raises Unsupported otherwise (which filesystem home is on cannot be known
from the class alone, so `unsupported_reason` only checks the kernel and
the btrfs tool).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from berth.core.driverkit import FullTreeDriver, filesystem_type, kernel_filesystems, run
from berth.core.errors import Unsupported


class BtrfsDriver(FullTreeDriver):
    """Layers as subvolumes under ``<home>/trees``; mount returns the subvolume."""

    name = "btrfs"
    home_filesystem = "btrfs"

    def __init__(self, home, options=None):
        fstype = filesystem_type(home)  # checked first: refusing leaves nothing behind
        if fstype != "btrfs":
            raise Unsupported(f"btrfs: {home} is on {fstype}, not on a btrfs filesystem")
        super().__init__(home, options)

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if "btrfs" not in kernel_filesystems():
            return "the kernel has no btrfs filesystem"
        if shutil.which("btrfs") is None:
            return "the btrfs tool (btrfs-progs) is not installed"
        return None

    def clone(self, parent: Path | None, path: Path) -> None:
        if parent is None:
            run(["btrfs", "subvolume", "create", str(path)], "btrfs: creating a subvolume")
        else:
            run(["btrfs", "subvolume", "snapshot", str(parent), str(path)], "btrfs: snapshotting a layer")

    def delete(self, path: Path) -> None:
        if path.is_dir():
            run(["btrfs", "subvolume", "delete", str(path)], "btrfs: deleting a subvolume")

    def status(self) -> list[tuple[str, str]]:
        version = run(["btrfs", "--version"], "btrfs").strip().split()[-1]
        return [("Backing Filesystem", "btrfs"), ("Build Version", version)]
