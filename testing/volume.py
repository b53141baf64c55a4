"""The volume driver suite: what every VolumeDriver must do.

Each case gets a fresh temporary home; teardown unmounts whatever is still
mounted under the case's directory (the driver's mounts and any bind
source) and detaches the loop devices of files there before deleting it,
even when the case failed, and then fails the case if any was left. The driver is built
as ``cls(home, options)`` with the ``--berth-conformance-opt`` options.
"""

from __future__ import annotations

import shutil

import pytest

from berth.core import plugins
from berth.core.drivers import VolumeDriver
from berth.core.errors import InvalidArgument, NotFound
from berth.testing.support import detach_loop_devices_under, loop_devices_under, mounts_under, unmount_all_under

C1 = "bt" + "a" * 62
C2 = "bt" + "b" * 62


class VolumeSuite:
    KIND = "volume"
    DRIVERS: list[str] | None = None

    @pytest.fixture
    def home(self, tmp_path, request):
        home = tmp_path / "volumes"
        request.node.berth_homes = [home]
        yield home
        mounted, loops = mounts_under(tmp_path), loop_devices_under(tmp_path)
        unmount_all_under(tmp_path)
        detach_loop_devices_under(tmp_path)
        shutil.rmtree(tmp_path, ignore_errors=True)
        assert not mounts_under(tmp_path)
        assert not loops, f"the driver left loop devices attached: {loops} (mounts: {mounted})"

    @pytest.fixture
    def make_driver(self, driver_name, home, driver_options):
        """make_driver() -> a new instance on the same home (as another berth process)."""
        cls = plugins.drivers("volume").supported(driver_name)
        return lambda: cls(home, dict(driver_options))

    @pytest.fixture
    def driver(self, make_driver):
        return make_driver()

    def test_registered_name_matches(self, driver_name, driver):
        assert isinstance(driver, VolumeDriver)
        assert type(driver).name == driver_name

    def test_create_list_path_remove(self, driver):
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

    def test_data_persists_across_mounts_and_instances(self, driver, make_driver):
        driver.create("btdata", {})
        (driver.mount("btdata", C1) / "f").write_bytes(b"hello")
        driver.unmount("btdata", C1)
        other = make_driver()  # as another berth process
        assert other.list() == ["btdata"]
        assert (other.mount("btdata", C2) / "f").read_bytes() == b"hello"
        other.unmount("btdata", C2)
        driver.remove("btdata")

    def test_create_twice_with_equal_options_is_idempotent(self, driver):
        driver.create("btsame", {})
        (driver.mount("btsame", C1) / "f").write_text("x")
        driver.create("btsame", {})
        assert driver.list() == ["btsame"]
        assert (driver.path("btsame") / "f").read_text() == "x"  # not recreated
        driver.unmount("btsame", C1)
        driver.remove("btsame")

    def test_missing_volume_is_not_found_with_dockers_text(self, driver):
        with pytest.raises(NotFound) as err:
            driver.remove("btmissing")
        assert str(err.value) == "no such volume: btmissing"
        with pytest.raises(NotFound):
            driver.mount("btmissing", C1)
        with pytest.raises(NotFound):
            driver.unmount("btmissing", C1)

    @pytest.mark.parametrize("name", ["../btescape", "a/b", "..", ".", "/abs", ""])
    def test_names_that_could_escape_are_refused(self, driver, home, name):
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

    def test_unmount_of_an_unknown_container_is_harmless(self, driver):
        driver.create("btidle", {})
        driver.unmount("btidle", C1)
        assert (driver.mount("btidle", C2)).is_dir()
        driver.unmount("btidle", C2)
        driver.remove("btidle")

    def test_remove_leaves_no_mount_and_nothing_in_home_but_the_drivers_own(self, driver, home):
        driver.create("btgone", {})
        driver.mount("btgone", C1)
        driver.unmount("btgone", C1)
        driver.remove("btgone")
        assert not mounts_under(home)
        assert not any(p.name.startswith("btgone") for p in home.rglob("*"))

    def test_capabilities_name_a_scope(self, driver):
        assert driver.capabilities().get("Scope") in ("local", "global")
