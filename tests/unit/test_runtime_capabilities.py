"""Capability sets: Docker's default, --cap-add/--cap-drop, name checks."""

import pytest

from berth.core.errors import InvalidArgument
from berth.core.runtime import capabilities


def test_default_set_is_dockers():
    assert capabilities.resolve() == 0xA80425FB


def test_add_and_drop_accept_docker_spellings():
    mask = capabilities.resolve(cap_add=["net_admin", "CAP_SYS_TIME"], cap_drop=["MKNOD"])
    assert mask == (0xA80425FB | 1 << 12 | 1 << 25) & ~(1 << 27)


def test_all():
    full = (1 << (capabilities.last_cap() + 1)) - 1
    bounding = int(next(line for line in open("/proc/self/status") if line.startswith("CapBnd:")).split()[1], 16)
    assert capabilities.resolve(cap_add=["ALL"]) == full & bounding  # what this host can grant
    assert capabilities.resolve(cap_drop=["ALL"]) == 0
    assert capabilities.resolve(cap_drop=["ALL"], cap_add=["CHOWN"]) == 1


def test_unknown_capability_is_a_usage_error():
    with pytest.raises(InvalidArgument) as info:
        capabilities.resolve(cap_add=["FLY"])
    assert str(info.value) == 'invalid CapAdd: unknown capability: "CAP_FLY"'
    assert info.value.exit_code == 125
