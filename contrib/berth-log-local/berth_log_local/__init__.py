"""berth plugin: the ``local`` log driver (``berth run --log-driver local ...``).

Imported whenever berth loads its plugins, so it stays tiny: the driver is
registered as a ``"module:Class"`` string, imported only when it is used.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_log_drivers(register):
    register("local", "berth_log_local.driver:LocalLogDriver")
