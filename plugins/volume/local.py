"""Docker's `local` volume driver: a directory per volume, optionally a mount.

Layout (Docker's)::

    <home>/                 0700
      <name>/               the volume
        _data/              0755, what containers see (Mountpoint)
        opts.json           Docker's {"MountType","MountOpts","MountDevice","Quota"}, 0600
        users.json          IDs of the containers using it (berth: no daemon memory)
        lock                flock'd while users.json or the mount change

Options (``-o``), as Docker's local driver: none (a plain directory), or
``type``, ``device`` and ``o`` together, e.g. ``type=tmpfs,device=tmpfs,o=size=10m``
or ``type=none,o=bind,device=/srv/data``. Such a volume is mounted on
``_data`` (with mount(8)) when its first user mounts it and unmounted when
the last user leaves, so a tmpfs volume's content lives as long as its users.

Crash safety: a volume is built under ``.tmp-*`` and renamed into place; a
removed one is first renamed to ``.trash-*`` (after its mount is gone) and
then deleted. Leftovers of either are swept on the next create.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from berth.core import driverkit
from berth.core.drivers import VolumeDriver
from berth.core.errors import BerthError, Conflict, FailedPrecondition, InvalidArgument, NotFound
from berth.core.plumbing.ids import random_hex

_VALID_OPTIONS = ("type", "device", "o", "size")
_MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_STALE_TMP_SECONDS = 600


class LocalVolumeDriver(VolumeDriver):
    """Named volumes as directories under `home`, Docker's local driver."""

    name = "local"

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        super().__init__(home, options)
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)

    # -- names and options ---------------------------------------------------------

    def _dir(self, name: str) -> Path:
        """The volume's directory; refuses names that could leave home."""
        return self.home / driverkit.check_name(name, "local volume",
                                                "If you intended to pass a host directory, use absolute path")

    @staticmethod
    def validate_options(options: Mapping[str, str]) -> dict[str, str]:
        """Docker's checks of the local driver's `-o` options; returns Docker's opts.json."""
        for key in options:
            if key not in _VALID_OPTIONS:
                raise InvalidArgument(f'invalid option: "{key}"')
        if "size" in options:
            raise InvalidArgument("quota size requested but no quota support")
        for key, required in _MANDATORY.items():
            if key in options:
                for other in required:
                    if other not in options:
                        raise InvalidArgument(f'missing required option: "{other}"')
        device = options.get("device", "")
        if "bind" in options.get("o", "").split(",") and not device.startswith("/"):
            raise InvalidArgument(f"invalid bind device '{device}': must be an absolute path")
        return {"MountType": options.get("type", ""), "MountOpts": options.get("o", ""),
                "MountDevice": device, "Quota": {"Size": 0}}

    def _opts(self, name: str) -> dict:
        try:
            return json.loads((self._dir(name) / "opts.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            raise BerthError(f"volume {name}: unreadable opts.json") from None

    # -- lifecycle -----------------------------------------------------------------

    def create(self, name: str, options: Mapping[str, str]) -> None:
        target = self._dir(name)
        opts = self.validate_options(dict(options or {}))
        if target.exists():
            return self._same_or_conflict(name, opts)
        self._sweep()
        tmp = self.home / f".tmp-{name}-{random_hex(4)}"
        try:
            tmp.mkdir(mode=0o755)
            os.chmod(tmp, 0o755)
            (tmp / "_data").mkdir(mode=0o755)
            os.chmod(tmp / "_data", 0o755)
            driverkit.write_atomic(tmp / "opts.json", json.dumps(opts).encode())
            driverkit.fsync_dir(tmp)
            try:
                os.rename(tmp, target)
            except OSError:  # made meanwhile by another process
                if not target.exists():
                    raise
                return self._same_or_conflict(name, opts)
            driverkit.fsync_dir(self.home)
        finally:
            driverkit.remove_tree(tmp, ignore_errors=True)

    def _same_or_conflict(self, name: str, opts: dict) -> None:
        if self._opts(name) != opts:
            raise Conflict(f"volume {name} already exists with different options")

    def remove(self, name: str) -> None:
        target = self._dir(name)
        if not target.is_dir():
            raise NotFound(f"no such volume: {name}")
        trash = self.home / f".trash-{name}-{random_hex(4)}"
        with driverkit.locked(self._dir(name) / "lock"):
            data = target / "_data"
            driverkit.unmount_all(data, "volume path")
            if driverkit.mounts_under(target):
                raise FailedPrecondition(f"remove {name}: volume has mounts under {target}")
            os.rename(target, trash)
        driverkit.fsync_dir(self.home)
        driverkit.remove_tree(trash, ignore_errors=True)

    def mount(self, name: str, container_id: str) -> Path:
        target = self._dir(name)
        if not target.is_dir():
            raise NotFound(f"no such volume: {name}")
        data = target / "_data"
        with driverkit.locked(self._dir(name) / "lock"):
            opts = self._opts(name)
            if opts.get("MountType") and not driverkit.is_mounted(data):
                _mount(opts, data)
            users = self._users(name)
            if container_id not in users:
                self._set_users(name, users + [container_id])
        return data

    def unmount(self, name: str, container_id: str) -> None:
        target = self._dir(name)
        if not target.is_dir():
            raise NotFound(f"no such volume: {name}")
        data = target / "_data"
        with driverkit.locked(self._dir(name) / "lock"):
            users = [u for u in self._users(name) if u != container_id]
            self._set_users(name, users)
            if not users and self._opts(name).get("MountType"):
                driverkit.unmount_all(data, "volume path")

    def path(self, name: str) -> Path:
        return self._dir(name) / "_data"

    def list(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self.home)
                      if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                      and os.path.isdir(os.path.join(e.path, "_data")))

    def capabilities(self) -> dict[str, str]:
        return {"Scope": "local"}

    def users(self, name: str) -> list[str]:
        """IDs of the containers that mounted volume `name` and did not unmount it."""
        return self._users(name)

    # -- helpers -------------------------------------------------------------------

    def _users(self, name: str) -> list[str]:
        try:
            return list(json.loads((self._dir(name) / "users.json").read_text()))
        except (FileNotFoundError, ValueError):
            return []

    def _set_users(self, name: str, users: list[str]) -> None:
        driverkit.write_atomic(self._dir(name) / "users.json", json.dumps(users).encode())

    def _sweep(self) -> None:
        """Delete what crashed creates and removes left behind."""
        now = time.time()
        for e in os.scandir(self.home):
            if e.name.startswith(".trash-") or (
                    e.name.startswith(".tmp-") and now - e.stat(follow_symlinks=False).st_mtime > _STALE_TMP_SECONDS):
                if not driverkit.mounts_under(e.path):
                    driverkit.remove_tree(e.path, ignore_errors=True)


def _hide_password(text: str) -> str:
    return re.sub(r"password=[^,\s]*", "password=********", text)


def _mount(opts: dict, data: Path) -> None:
    cmd = ["mount", "-t", opts["MountType"]]
    if opts.get("MountOpts"):
        cmd += ["-o", opts["MountOpts"]]
    cmd += ["--", opts["MountDevice"], str(data)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise BerthError(_hide_password(f"error while mounting volume '{data}': failed to mount local volume: "
                                        f"mount {opts['MountDevice']}:{data}, opts: {opts.get('MountOpts', '')}: {why}"))

