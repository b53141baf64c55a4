"""vfs: every layer a full copy of its parent. Slow and big, but works on any
filesystem (reflinks make the copies cheap where the filesystem has them)."""

from __future__ import annotations

import os
from pathlib import Path

from berth.core.driverkit import FullTreeDriver, remove_tree, run


class VfsDriver(FullTreeDriver):
    """Layers as plain directories under ``<home>/trees``; mount returns the directory."""

    name = "vfs"

    def clone(self, parent: Path | None, path: Path) -> None:
        # build beside, then rename: a crash never leaves a half copy under the real name
        tmp = path.with_name(f".tmp-{path.name}")
        if os.path.lexists(tmp):
            remove_tree(tmp)
        if parent is None:
            tmp.mkdir(mode=0o755)
        else:
            # cp -a keeps owners, modes, times, xattrs, devices and hard links
            run(["cp", "-a", "--reflink=auto", "--", str(parent), str(tmp)], "vfs: copying a layer")
        os.rename(tmp, path)

    def delete(self, path: Path) -> None:
        if os.path.lexists(path):
            remove_tree(path)
