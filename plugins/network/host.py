"""`--network host`: the container stays in the host's network namespace."""

from berth.core.drivers import NetworkDriver


class HostDriver(NetworkDriver):
    """No namespace, no device, no rule: nothing to wire or undo."""

    name = "host"
    namespace = "host"
