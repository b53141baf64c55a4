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

Only the state on disk counts (``options.json`` and the kernel's mount
table), never this object's memory, so any number of berth processes can
use one volume at once. A volume is built under ``.tmp-*`` and renamed into
place; a removed one is unmounted, renamed to ``.trash-*`` and deleted, so a
crash never leaves half a volume (leftovers are swept on the next create).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Mapping

from berth.core import driverkit
from berth.core.drivers import VolumeDriver
from berth.core.errors import BerthError, Conflict, FailedPrecondition, InvalidArgument, NotFound

DEFAULT_SIZE = "64m"
_SIZE_RE = re.compile(r"^[1-9][0-9]*[kmgKMG%]?$")
_STALE_TMP_SECONDS = 600


class TmpfsVolumeDriver(VolumeDriver):
    """Named volumes held in memory, one tmpfs mount each."""

    name = "tmpfs"

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        super().__init__(home, options)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)

    @classmethod
    def unsupported_reason(cls) -> str | None:
        if os.geteuid() != 0:
            return f"mounting a tmpfs needs root (running as uid {os.geteuid()})"
        with open("/proc/filesystems") as f:
            if not any(line.split()[-1:] == ["tmpfs"] for line in f):
                return "the kernel has no tmpfs filesystem"
        return None

    # -- names and options -------------------------------------------------------

    def _dir(self, name: str) -> Path:
        """The volume's directory; refuses names that could leave home."""
        return self.home / driverkit.check_name(name, "tmpfs volume")

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

    def _options(self, name: str) -> dict[str, str]:
        try:
            return json.loads((self._dir(name) / "options.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise BerthError(f"volume {name}: unreadable options.json") from None

    # -- the VolumeDriver interface ----------------------------------------------

    def create(self, name: str, options: Mapping[str, str]) -> None:
        target = self._dir(name)
        opts = self.validate_options(dict(options or {}))
        if not target.exists():
            self._sweep()
            tmp = self.home / f".tmp-{name}-{secrets.token_hex(4)}"
            try:
                tmp.mkdir(mode=0o700)
                (tmp / "_data").mkdir(mode=0o755)
                (tmp / "options.json").write_text(json.dumps(opts))
                try:
                    os.rename(tmp, target)
                except OSError:  # another process made it meanwhile
                    if not target.exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if self._options(name) != opts:
            raise Conflict(f"volume {name} already exists with different options")
        with driverkit.locked(self._dir(name) / "lock"):
            self._ensure_mounted(name)

    def remove(self, name: str) -> None:
        target = self._check(name)
        trash = self.home / f".trash-{name}-{secrets.token_hex(4)}"
        with driverkit.locked(self._dir(name) / "lock"):
            driverkit.unmount_all(target / "_data", "volume path")
            if driverkit.mounts_under(target):
                raise FailedPrecondition(f"remove {name}: volume has mounts under {target}")
            os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def mount(self, name: str, container_id: str) -> Path:
        self._check(name)
        with driverkit.locked(self._dir(name) / "lock"):
            self._ensure_mounted(name)  # again after a reboot
        return self.path(name)

    def unmount(self, name: str, container_id: str) -> None:
        # The tmpfs stays mounted until remove: unmounting would lose the
        # data, and a volume's data outlives the containers that use it.
        self._check(name)

    def path(self, name: str) -> Path:
        return self._dir(name) / "_data"

    def list(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if not e.name.startswith(".") and os.path.isfile(os.path.join(e.path, "options.json")))

    def capabilities(self) -> dict[str, str]:
        return {"Scope": "local"}

    # -- helpers -----------------------------------------------------------------

    def _check(self, name: str) -> Path:
        target = self._dir(name)
        if not (target / "options.json").is_file():
            raise NotFound(f"no such volume: {name}")
        return target

    def _ensure_mounted(self, name: str) -> None:
        data = self.path(name)
        if driverkit.is_mounted(data):
            return
        opts = f"size={self._options(name).get('size', DEFAULT_SIZE)},mode=0755,nosuid,nodev"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(data)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
            raise BerthError(f"error while mounting tmpfs volume {name} on '{data}': {why}")

    def _sweep(self) -> None:
        """Delete what crashed creates and removes left behind."""
        now = time.time()
        for e in os.scandir(self.home):
            stale_tmp = e.name.startswith(".tmp-") and now - e.stat(follow_symlinks=False).st_mtime > _STALE_TMP_SECONDS
            if (stale_tmp or e.name.startswith(".trash-")) and not driverkit.mounts_under(e.path):
                shutil.rmtree(e.path, ignore_errors=True)
