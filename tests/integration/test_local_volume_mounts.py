"""The local driver's own promises with real mounts, beyond the kit's volume
suite: Docker's tmpfs and bind options, bind volumes never lose their
source's data, failed mounts leave nothing behind, users are shared between
processes."""

from __future__ import annotations

import os
import shutil

import pytest

from berth.core import plugins
from berth.core.driverkit import is_mounted
from berth.core.errors import BerthError, Conflict
from berth.testing.support import mounts_under, unmount_all_under

C1 = "bt" + "c" * 62
C2 = "bt" + "d" * 62


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "volumes"
    yield home
    unmount_all_under(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert not mounts_under(tmp_path)


@pytest.fixture
def local(home):
    return plugins.drivers("volume").get("local")(home, {})


def test_bind_volume_shows_and_keeps_its_source(local, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "precious").write_text("data")
    local.create("btbind", {"type": "none", "o": "bind", "device": str(source)})
    path = local.mount("btbind", C1)
    assert is_mounted(path) and (path / "precious").read_text() == "data"
    (path / "new").write_text("through the volume")
    local.unmount("btbind", C1)
    assert not is_mounted(path) and not any(path.iterdir())
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
    assert not is_mounted(local.path("btbroken"))
    local.remove("btbroken")


def test_users_are_shared_between_processes(local, home):
    local.create("btshared", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    other = plugins.drivers("volume").get("local")(home, {})
    path = local.mount("btshared", C1)
    assert other.mount("btshared", C2) == path
    local.mount("btshared", C1)  # a repeated mount counts once
    assert sorted(other.users("btshared")) == [C1, C2]
    other.unmount("btshared", C1)
    assert is_mounted(path)
    local.unmount("btshared", C2)
    assert not is_mounted(path)
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


def _is_tmpfs(path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == os.path.realpath(path) and line.split()[2] == "tmpfs" for line in f)


def test_tmpfs_option_volume_is_a_real_tmpfs_while_used(local, home):
    local.create("bttmp", {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    path = local.path("bttmp")
    assert not _is_tmpfs(path)  # mounted at first use, not at create
    assert local.mount("bttmp", C1) == path
    assert _is_tmpfs(path)
    (path / "scratch").write_bytes(b"x" * 4096)
    local.mount("bttmp", C2)
    local.unmount("bttmp", C1)
    assert _is_tmpfs(path) and (path / "scratch").exists()  # C2 still uses it
    local.unmount("bttmp", C2)
    assert not _is_tmpfs(path)
    assert not any(path.iterdir())  # the data lived in memory only
    local.remove("bttmp")
    assert not mounts_under(home)
    assert not any(home.iterdir())


def test_remove_of_a_mounted_tmpfs_volume_unmounts_it(local, home):
    local.create("bttmp2", {"type": "tmpfs", "device": "tmpfs"})
    local.mount("bttmp2", C1)
    local.remove("bttmp2")
    assert not mounts_under(home)
    assert not any(home.iterdir())


def test_unmount_detaches_a_mount_and_ignores_a_plain_directory(tmp_path):
    """driverkit.unmount asks the kernel alone (the mount table grows with every running
    container): a plain or missing directory is no error, a mount is detached."""
    from berth.core import driverkit
    from berth.core.runtime import syscalls

    plain = tmp_path / "plain"
    plain.mkdir()
    driverkit.unmount(plain)
    driverkit.unmount(tmp_path / "missing")
    target = tmp_path / "mounted"
    target.mkdir()
    syscalls.mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
    try:
        assert is_mounted(target)
        driverkit.unmount(target)
        assert not is_mounted(target)
    finally:
        if is_mounted(target):
            syscalls.umount2(str(target), syscalls.MNT_DETACH)
