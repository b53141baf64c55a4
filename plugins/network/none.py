"""`--network none`: a network namespace of its own with loopback only."""

from berth.core.drivers import NetworkDriver


class NoneDriver(NetworkDriver):
    """The runtime makes the namespace and brings `lo` up; nothing else is wired."""

    name = "none"
    namespace = "new"
