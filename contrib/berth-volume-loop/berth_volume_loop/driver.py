"""The ``loop`` volume driver: every volume is its own ext4 filesystem image.

A volume is a sparse file holding an ext4 filesystem of exactly the size
asked for (``-o size=64m``), loop-mounted while containers use it: a write
past the size fails with ENOSPC ("No space left on device") inside the
container, whatever the host has free, and the volume takes on the host
only the blocks written. The image is made by ``mkfs.ext4`` (Debian:
e2fsprogs) and mounted by ``mount -o loop`` (util-linux), which frees its
loop device on unmount.

Layout under the driver's home (berth gives it ``<root>/volumes-loop``)::

    <home>/                 0700
      <name>/               0700
        options.json        the volume's options, e.g. {"size": "64m"}
        lock                flock'd while the volume is (un)mounted or removed
        users.json          the containers using it now (their IDs)
        image               the filesystem image (sparse)
        fs/                 where the image is mounted while in use
          data/             the volume's content (inspect's Mountpoint);
                            the filesystem's root also holds lost+found

Options (``berth volume create -d loop -o size=64m NAME``):

- ``size``: the filesystem's size, in bytes or with a k, m, g or t suffix
  (powers of 1024); at least 1m; default ``64m``.

The image is mounted at the first container's ``mount`` and unmounted
after the last one's ``unmount`` (also when the volume is removed), so a
loop device is held only while the volume is in use; the data stays in the
image. Only the state on disk counts (``options.json``, ``users.json``,
the kernel's mount table), never this object's memory, so any number of
berth processes can use one volume at once. The directory per volume and
crash-safe create and remove come from
``berth.core.driverkit.DirectoryVolumeDriver``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Mapping

from berth.core import driverkit
from berth.core.errors import InvalidArgument

DEFAULT_SIZE = "64m"
MIN_SIZE = 1 << 20
_SIZE_RE = re.compile(r"^([1-9][0-9]*)([kmgt]?)b?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``64m``; InvalidArgument if it is not one."""
    match = _SIZE_RE.match(text.strip().lower())
    if not match:
        raise InvalidArgument(f"invalid size '{text}': must be a number of bytes with an optional k, m, g or t suffix")
    size = int(match.group(1)) * _UNITS[match.group(2)]
    if size < MIN_SIZE:
        raise InvalidArgument(f"invalid size '{text}': a loop volume holds at least 1m")
    return size


class LoopVolumeDriver(driverkit.DirectoryVolumeDriver):
    """Named volumes of a fixed size, each an ext4 image loop-mounted while in use."""

    name = "loop"

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if os.geteuid() != 0:
            return f"mounting a filesystem image needs root (running as uid {os.geteuid()})"
        if shutil.which("mkfs.ext4") is None:
            return "mkfs.ext4 is not installed (Debian: apt install e2fsprogs)"
        if not os.path.exists("/dev/loop-control"):
            return "the kernel has no loop devices (/dev/loop-control does not exist; try: modprobe loop)"
        if "ext4" not in driverkit.kernel_filesystems():
            return "the kernel has no ext4 filesystem (try: modprobe ext4)"
        return None

    @staticmethod
    def validate_options(options: Mapping[str, str]) -> dict[str, str]:
        """The volume's options with defaults filled in; InvalidArgument if bad."""
        for key in options:
            if key != "size":
                raise InvalidArgument(f'invalid option: "{key}" (the loop volume driver takes only "size")')
        size = options.get("size", DEFAULT_SIZE).strip().lower()
        parse_size(size)
        return {"size": size}

    def prepare(self, tmp: Path, name: str, options: dict[str, str]) -> None:
        (tmp / "fs").mkdir(mode=0o755)
        template = tmp / "template"
        (template / "data").mkdir(mode=0o755, parents=True)
        with open(tmp / "image", "wb") as f:
            f.truncate(parse_size(options["size"]))  # sparse: blocks are taken as they are written
        # -m 0: no blocks reserved for root (the whole size is the volume's);
        # -d: the filesystem starts with the empty data directory
        driverkit.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0", "-d", str(template),
                       "-L", name[:16], str(tmp / "image")], f"creating loop volume {name}")
        shutil.rmtree(template)

    def mount(self, name: str, container_id: str) -> Path:
        target = self.require(name)
        with self.volume_lock(name):
            if not driverkit.is_mounted(target / "fs"):
                users: set[str] = set()  # nobody can use an unmounted volume (a reboot, a crash)
                driverkit.run(["mount", "-t", "ext4", "-o", "loop,nosuid,nodev", str(target / "image"),
                               str(target / "fs")], f"error while mounting loop volume {name}")
            else:
                users = self._users(name)
            users.add(container_id)
            self._save_users(name, users)
        return self.path(name)

    def unmount(self, name: str, container_id: str) -> None:
        target = self.require(name)
        with self.volume_lock(name):
            users = self._users(name)
            if container_id not in users:
                return
            users.discard(container_id)
            if not users:
                driverkit.unmount_all(target / "fs", "volume path")  # frees the loop device (autoclear)
            self._save_users(name, users)

    def path(self, name: str) -> Path:
        return self.volume_dir(name) / "fs" / "data"

    def _users(self, name: str) -> set[str]:
        try:
            return set(json.loads((self.volume_dir(name) / "users.json").read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def _save_users(self, name: str, users: set[str]) -> None:
        driverkit.write_atomic(self.volume_dir(name) / "users.json", json.dumps(sorted(users)).encode())
