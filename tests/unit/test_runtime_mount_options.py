"""Mount option words to mount(2) flags and filesystem data."""

from berth.core.runtime import syscalls as sc
from berth.core.runtime.filesystem import parse_options


def test_flags_data_and_propagation():
    flags, propagation, data, recursive = parse_options(
        ["ro", "nosuid", "nodev", "size=64m", "mode=1777", "rprivate"])
    assert flags == sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV
    assert propagation == sc.MS_PRIVATE | sc.MS_REC
    assert data == "size=64m,mode=1777"
    assert recursive


def test_rw_after_ro_and_plain_bind():
    flags, _, data, recursive = parse_options(["ro", "rw", "bind"])
    assert flags == 0 and data == "" and not recursive
