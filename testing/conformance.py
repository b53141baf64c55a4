"""The kit's suites as pytest collects them for ``--berth-conformance``
(berth.testing.plugin names this file and the classes of the kinds asked
for). Each class is a suite, unchanged: a driver author's own test module
can subclass the suites the same way."""

from berth.testing.logging import LoggingSuite
from berth.testing.network import NetworkSuite
from berth.testing.registry import RegistrySuite
from berth.testing.storage import StorageSuite
from berth.testing.volume import VolumeSuite


class TestStorage(StorageSuite):
    pass


class TestNetwork(NetworkSuite):
    pass


class TestVolume(VolumeSuite):
    pass


class TestLogging(LoggingSuite):
    pass


class TestRegistry(RegistrySuite):
    pass
