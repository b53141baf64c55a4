"""berth plugin: the ``fuse-overlayfs`` storage driver
(``berth --storage-driver fuse-overlayfs``, or ``storage.driver`` in the
configuration file).

Imported whenever berth loads its plugins, so it stays tiny: the driver is
registered as a ``"module:Class"`` string, imported only when it is used.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_storage_drivers(register):
    register("fuse-overlayfs", "berth_storage_fuse_overlayfs.driver:FuseOverlayfsDriver")
