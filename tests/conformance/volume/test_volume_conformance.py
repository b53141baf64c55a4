"""What every volume driver must do (run for each registered driver)."""

from __future__ import annotations

import os

import pytest

from berth.core import plugins
from berth.core.drivers import VolumeDriver
from berth.core.errors import InvalidArgument, NotFound

C1 = "bt" + "a" * 62
C2 = "bt" + "b" * 62


def test_registered_name_matches(driver_name, driver):
    assert isinstance(driver, VolumeDriver)
    assert type(driver).name == driver_name


def test_create_list_path_remove(driver):
    assert driver.list() == []
    driver.create("btvol1", {})
    driver.create("btvol0", {})
    assert driver.list() == ["btvol0", "btvol1"]
    path = driver.mount("btvol1", C1)
    assert path == driver.path("btvol1") and path.is_dir()
    (path / "file").write_text("kept")
    driver.unmount("btvol1", C1)
    driver.remove("btvol1")
    assert driver.list() == ["btvol0"]
    assert not path.exists()
    driver.remove("btvol0")
    assert driver.list() == []


def test_data_persists_across_mounts_and_instances(driver_name, driver, home):
    driver.create("btdata", {})
    (driver.mount("btdata", C1) / "f").write_bytes(b"hello")
    driver.unmount("btdata", C1)
    other = plugins.drivers("volume").get(driver_name)(home, {})  # as another berth process
    assert other.list() == ["btdata"]
    assert (other.mount("btdata", C2) / "f").read_bytes() == b"hello"
    other.unmount("btdata", C2)
    driver.remove("btdata")


def test_create_twice_with_equal_options_is_idempotent(driver):
    driver.create("btsame", {})
    (driver.path("btsame") / "f").write_text("x")
    driver.create("btsame", {})
    assert driver.list() == ["btsame"]
    assert (driver.path("btsame") / "f").read_text() == "x"  # not recreated
    driver.remove("btsame")


def test_missing_volume_is_not_found_with_dockers_text(driver):
    with pytest.raises(NotFound) as err:
        driver.remove("btmissing")
    assert str(err.value) == "no such volume: btmissing"
    with pytest.raises(NotFound):
        driver.mount("btmissing", C1)
    with pytest.raises(NotFound):
        driver.unmount("btmissing", C1)


@pytest.mark.parametrize("name", ["../btescape", "a/b", "..", ".", "/abs", ""])
def test_names_that_could_escape_are_refused(driver, home, name):
    with pytest.raises(InvalidArgument):
        driver.create(name, {})
    with pytest.raises(InvalidArgument):
        driver.remove(name)
    with pytest.raises(InvalidArgument):
        driver.mount(name, C1)
    with pytest.raises(InvalidArgument):
        driver.path(name)
    assert not (home.parent / "btescape").exists()
    assert driver.list() == []


def test_unmount_of_an_unknown_container_is_harmless(driver):
    driver.create("btidle", {})
    driver.unmount("btidle", C1)
    assert (driver.mount("btidle", C2)).is_dir()
    driver.unmount("btidle", C2)
    driver.remove("btidle")


def test_capabilities_name_a_scope(driver):
    assert driver.capabilities().get("Scope") in ("local", "global")


def _is_tmpfs(path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == os.path.realpath(path) and line.split()[2] == "tmpfs" for line in f)


def test_tmpfs_option_volume_is_a_real_tmpfs_while_used(driver, home, mounts_under):
    try:
        driver.create("bttmp", {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"})
    except InvalidArgument:
        pytest.skip("this driver has no Docker-style tmpfs options")
    path = driver.path("bttmp")
    assert not _is_tmpfs(path)  # mounted at first use, not at create
    assert driver.mount("bttmp", C1) == path
    assert _is_tmpfs(path)
    (path / "scratch").write_bytes(b"x" * 4096)
    driver.mount("bttmp", C2)
    driver.unmount("bttmp", C1)
    assert _is_tmpfs(path) and (path / "scratch").exists()  # C2 still uses it
    driver.unmount("bttmp", C2)
    assert not _is_tmpfs(path)
    assert not any(path.iterdir())  # the data lived in memory only
    driver.remove("bttmp")
    assert not mounts_under(home)
    assert not any(home.iterdir())


def test_remove_of_a_mounted_tmpfs_volume_unmounts_it(driver, home, mounts_under):
    try:
        driver.create("bttmp2", {"type": "tmpfs", "device": "tmpfs"})
    except InvalidArgument:
        pytest.skip("this driver has no Docker-style tmpfs options")
    driver.mount("bttmp2", C1)
    driver.remove("bttmp2")
    assert not mounts_under(home)
    assert not any(home.iterdir())
