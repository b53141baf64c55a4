"""berth's HTTP registry driver, and contrib's OCI layout transport (oci:), through the kit's
registry suite (berth.testing.registry)."""

from berth.testing.registry import RegistrySuite


class TestRegistry(RegistrySuite):
    DRIVERS = ["docker", "oci"]
