"""berth's default volume driver: local (Docker's). Modules load on first use."""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_volume_drivers(register):
    register("local", "berth.plugins.volume.local:LocalVolumeDriver")
