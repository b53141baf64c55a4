"""berth plugin: the ``macvlan`` network driver
(``berth network create -d macvlan -o parent=eth0 --subnet 192.168.5.0/24 lan``).

Imported whenever berth loads its plugins, so it stays tiny: the driver is
registered as a ``"module:Class"`` string, imported only when it is used.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_network_drivers(register):
    register("macvlan", "berth_network_macvlan.driver:MacvlanDriver")
