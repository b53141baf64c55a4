"""berth's storage drivers through the kit's storage suite (berth.testing.storage):
every registered driver this host supports, btrfs on a loop-mounted btrfs."""

from berth.testing.storage import StorageSuite


class TestStorage(StorageSuite):
    pass
