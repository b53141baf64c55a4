"""The local volume driver without mounts: layout, modes, options, crash leftovers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from berth.core.errors import InvalidArgument, NotFound
from berth.plugins.volume.local import LocalVolumeDriver


@pytest.fixture
def local(tmp_path):
    return LocalVolumeDriver(tmp_path / "volumes", {})


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_dockers_layout_and_modes(local):
    old = os.umask(0o077)  # a strict umask must not change the modes
    try:
        local.create("btlayout", {})
    finally:
        os.umask(old)
    assert _mode(local.home) == 0o700
    assert local.path("btlayout") == local.home / "btlayout" / "_data"
    assert _mode(local.path("btlayout")) == 0o755
    assert json.loads((local.home / "btlayout" / "opts.json").read_text()) == {
        "MountType": "", "MountOpts": "", "MountDevice": "", "Quota": {"Size": 0}}


def test_opts_json_records_dockers_fields(local):
    local.create("bttmpfs", {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"})
    assert json.loads((local.home / "bttmpfs" / "opts.json").read_text()) == {
        "MountType": "tmpfs", "MountOpts": "size=10m,uid=1000", "MountDevice": "tmpfs", "Quota": {"Size": 0}}


@pytest.mark.parametrize("options,message", [
    ({"foo": "bar"}, 'invalid option: "foo"'),
    ({"type": "tmpfs"}, 'missing required option: "device"'),
    ({"device": "tmpfs"}, 'missing required option: "type"'),
    ({"o": "size=1m", "type": "tmpfs"}, 'missing required option: "device"'),
    ({"size": "10m"}, "quota size requested but no quota support"),
    ({"type": "none", "o": "bind", "device": "relative/dir"},
     "invalid bind device 'relative/dir': must be an absolute path"),
])
def test_bad_options_are_refused_and_nothing_is_made(local, options, message):
    with pytest.raises(InvalidArgument) as err:
        local.create("btbad", options)
    assert str(err.value) == message
    assert local.list() == [] and not (local.home / "btbad").exists()


def test_crash_leftovers_are_invisible_and_swept(local):
    half = local.home / ".tmp-bthalf-0000"
    (half / "_data").mkdir(parents=True)
    os.utime(half, (0, 0))  # an old crash
    (local.home / ".trash-btgone-0000" / "_data").mkdir(parents=True)
    assert local.list() == []
    local.create("btnext", {})
    assert sorted(os.listdir(local.home)) == ["btnext"]


def test_remove_leaves_nothing(local):
    local.create("btrm", {})
    (local.path("btrm") / "sub").mkdir()
    (local.path("btrm") / "sub" / "f").write_text("x")
    local.remove("btrm")
    assert os.listdir(local.home) == []
    with pytest.raises(NotFound):
        local.remove("btrm")


def test_a_directory_without_data_is_not_a_volume(local):
    (local.home / "btstray").mkdir()
    assert local.list() == []
