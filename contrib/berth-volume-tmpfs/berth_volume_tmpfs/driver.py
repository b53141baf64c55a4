"""The ``tmpfs`` volume driver: every volume is its own tmpfs mount.

A volume's data lives in memory only. The tmpfs is mounted when the volume
is created and stays mounted, so data outlives the containers that use it
(as any volume's does), until the volume is removed -- or the host reboots:
after a reboot the volume still exists, empty, and is mounted again on its
next use.

Layout under the driver's home (berth gives it ``<root>/volumes-tmpfs``)::

    <home>/                 0700
      <name>/               0700
        options.json        the volume's options, e.g. {"size": "64m"}
        lock                flock'd while the volume is mounted or removed
        _data/              the tmpfs mount point (inspect's Mountpoint)

Options (``berth volume create -d tmpfs -o size=64m NAME``):

- ``size``: the most memory the volume may use, as tmpfs(5) takes it
  (``64m``, ``1g``, ``512k``, ``10%``); default ``64m``.

The directory per volume, its options on disk, crash-safe create and
remove come from ``berth.core.driverkit.DirectoryVolumeDriver``: only the
state on disk counts (``options.json`` and the kernel's mount table), never
this object's memory, so any number of berth processes can use one volume
at once, and a crash never leaves half a volume.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from berth.core import driverkit
from berth.core.errors import InvalidArgument

DEFAULT_SIZE = "64m"
_SIZE_RE = re.compile(r"^[1-9][0-9]*[kmgKMG%]?$")


class TmpfsVolumeDriver(driverkit.DirectoryVolumeDriver):
    """Named volumes held in memory, one tmpfs mount each."""

    name = "tmpfs"

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if os.geteuid() != 0:
            return f"mounting a tmpfs needs root (running as uid {os.geteuid()})"
        if "tmpfs" not in driverkit.kernel_filesystems():
            return "the kernel has no tmpfs filesystem"
        return None

    @staticmethod
    def validate_options(options: Mapping[str, str]) -> dict[str, str]:
        """The volume's options with defaults filled in; InvalidArgument if bad."""
        for key in options:
            if key != "size":
                raise InvalidArgument(f'invalid option: "{key}" (the tmpfs volume driver takes only "size")')
        size = options.get("size", DEFAULT_SIZE)
        if not _SIZE_RE.match(size):
            raise InvalidArgument(f"invalid size '{size}': must be a number with an optional k, m, g or % suffix")
        return {"size": size}

    def prepare(self, tmp: Path, name: str, options: dict[str, str]) -> None:
        (tmp / "_data").mkdir(mode=0o755)

    def create(self, name: str, options: Mapping[str, str]) -> None:
        super().create(name, options)
        with self.volume_lock(name):
            self._ensure_mounted(name)

    def mount(self, name: str, container_id: str) -> Path:
        with self.volume_lock(name):
            self._ensure_mounted(name)  # again after a reboot
        return self.path(name)

    def unmount(self, name: str, container_id: str) -> None:
        # The tmpfs stays mounted until remove: unmounting would lose the
        # data, and a volume's data outlives the containers that use it.
        self.require(name)

    def path(self, name: str) -> Path:
        return self.volume_dir(name) / "_data"

    def _ensure_mounted(self, name: str) -> None:
        data = self.path(name)
        if driverkit.is_mounted(data):
            return
        opts = f"size={self.volume_options(name).get('size', DEFAULT_SIZE)},mode=0755,nosuid,nodev"
        driverkit.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(data)],
                      f"error while mounting tmpfs volume {name} on '{data}'")
