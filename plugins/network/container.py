"""`--network container:NAME|ID`: join another running container's namespace."""

from berth.core.drivers import NetworkDriver


class ContainerDriver(NetworkDriver):
    """The runtime joins /proc/<other pid>/ns/net; the joined container owns
    the devices and rules, so joining wires and undoes nothing."""

    name = "container"
    namespace = "join"
