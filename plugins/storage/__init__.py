"""berth's default storage drivers: overlay2 (default), vfs, btrfs; aufs and
devicemapper only say why they cannot run. Modules load on first use."""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_storage_drivers(register):
    register("overlay2", "berth.plugins.storage.overlay2:Overlay2Driver")
    register("vfs", "berth.plugins.storage.vfs:VfsDriver")
    register("btrfs", "berth.plugins.storage.btrfs:BtrfsDriver")
    register("aufs", "berth.plugins.storage.unsupported:AufsDriver")
    register("devicemapper", "berth.plugins.storage.unsupported:DevicemapperDriver")
