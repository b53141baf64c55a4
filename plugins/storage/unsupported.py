"""aufs and devicemapper: names users know from Docker, reported clearly.

berth does not implement them (Docker itself removed both); these drivers
exist so that `--storage-driver aufs` says why it cannot work instead of
"unknown driver". The reason names what this kernel lacks.
"""

from __future__ import annotations

from pathlib import Path

from berth.core import driverkit
from berth.core.drivers import StorageDriver
from berth.core.errors import Unsupported

DM_MODULE = Path("/sys/module/dm_mod")
DM_CONTROL = Path("/dev/mapper/control")


class _Unavailable(StorageDriver):
    """A storage driver that is never supported; every operation raises Unsupported."""

    def __init__(self, home, options=None):
        raise Unsupported(f"storage driver {self.name!r} is not supported on this host: {self.unsupported_reason()}")

    def _refuse(self, *args, **kwargs):
        raise Unsupported(f"storage driver {self.name!r} is not supported: {self.unsupported_reason()}")

    create = apply_diff = create_rw = mount = unmount = exists = remove = _refuse
    changes = export_diff = usage = _refuse


class AufsDriver(_Unavailable):
    name = "aufs"

    @classmethod
    def unsupported_reason(cls) -> str:
        if "aufs" not in driverkit.kernel_filesystems():
            return "the kernel has no aufs filesystem (use overlay2)"
        return "berth does not implement aufs (removed from Docker too); use overlay2"


class DevicemapperDriver(_Unavailable):
    name = "devicemapper"

    @classmethod
    def unsupported_reason(cls) -> str:
        if not DM_MODULE.exists() and not DM_CONTROL.exists():
            return "the kernel has no device-mapper (no dm_mod module, no /dev/mapper/control); use overlay2"
        return "berth does not implement devicemapper (removed from Docker too); use overlay2"
