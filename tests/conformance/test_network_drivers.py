"""berth's network drivers through the kit's network suite (berth.testing.network)."""

from berth.testing.network import NetworkSuite


class TestNetwork(NetworkSuite):
    DRIVERS = ["bridge", "host", "none", "container"]
