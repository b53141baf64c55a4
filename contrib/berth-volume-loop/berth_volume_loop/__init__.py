"""berth plugin: the ``loop`` volume driver
(``berth volume create -d loop -o size=64m NAME``).

Imported whenever berth loads its plugins, so it stays tiny: the driver is
registered as a ``"module:Class"`` string, imported only when it is used.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_volume_drivers(register):
    register("loop", "berth_volume_loop.driver:LoopVolumeDriver")
