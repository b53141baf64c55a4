"""berth plugin: the ``tmpfs`` volume driver (``berth volume create -d tmpfs``).

This module is imported whenever berth loads its plugins, so it stays tiny:
the driver is registered as a ``"module:Class"`` string and its module is
imported only when someone uses a tmpfs volume.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_volume_drivers(register):
    register("tmpfs", "berth_volume_tmpfs.driver:TmpfsVolumeDriver")
