"""The local driver's own promises with real mounts: bind volumes never lose
their source's data, failed mounts leave nothing behind, users are shared
between processes."""

from __future__ import annotations

import os

import pytest

from berth.core import plugins
from berth.core.errors import BerthError, Conflict

C1 = "bt" + "c" * 62
C2 = "bt" + "d" * 62


@pytest.fixture
def local(home):
    return plugins.drivers("volume").get("local")(home, {})


def _mounted(path) -> bool:
    # not os.path.ismount: a bind mount from the same filesystem keeps st_dev
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == os.path.realpath(path) for line in f)


def test_bind_volume_shows_and_keeps_its_source(local, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "precious").write_text("data")
    local.create("btbind", {"type": "none", "o": "bind", "device": str(source)})
    path = local.mount("btbind", C1)
    assert _mounted(path) and (path / "precious").read_text() == "data"
    (path / "new").write_text("through the volume")
    local.unmount("btbind", C1)
    assert not _mounted(path) and not any(path.iterdir())
    assert (source / "new").read_text() == "through the volume"
    local.mount("btbind", C2)
    local.remove("btbind")  # while mounted: unmounts first, never deletes the source
    assert sorted(p.name for p in source.iterdir()) == ["new", "precious"]
    assert local.list() == []


def test_failed_mount_records_no_user(local, tmp_path):
    local.create("btbroken", {"type": "none", "o": "bind", "device": str(tmp_path / "bt-missing")})
    with pytest.raises(BerthError) as err:
        local.mount("btbroken", C1)
    assert str(err.value).startswith(f"error while mounting volume '{local.path('btbroken')}': failed to mount")
    assert "\n" not in str(err.value)
    assert local.users("btbroken") == []
    assert not _mounted(local.path("btbroken"))
    local.remove("btbroken")


def test_users_are_shared_between_processes(local, home):
    local.create("btshared", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    other = plugins.drivers("volume").get("local")(home, {})
    path = local.mount("btshared", C1)
    assert other.mount("btshared", C2) == path
    local.mount("btshared", C1)  # a repeated mount counts once
    assert sorted(other.users("btshared")) == [C1, C2]
    other.unmount("btshared", C1)
    assert _mounted(path)
    local.unmount("btshared", C2)
    assert not _mounted(path)
    local.remove("btshared")


def test_create_with_other_options_conflicts(local):
    local.create("btopts", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    local.create("btopts", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with pytest.raises(Conflict) as err:
        local.create("btopts", {"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})
    assert str(err.value) == "volume btopts already exists with different options"
    with pytest.raises(Conflict):
        local.create("btopts", {})
    local.remove("btopts")
