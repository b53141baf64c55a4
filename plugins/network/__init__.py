"""The default network drivers: bridge, host, none, container.

Registered as "module:Class" strings: pyroute2 and the nftables calls load
only when a container actually uses the bridge.
"""

from berth.core.hookspecs import hookimpl


@hookimpl
def register_network_drivers(register):
    register("bridge", "berth.plugins.network.bridge:BridgeDriver")
    register("host", "berth.plugins.network.host:HostDriver")
    register("none", "berth.plugins.network.none:NoneDriver")
    register("container", "berth.plugins.network.container:ContainerDriver")
