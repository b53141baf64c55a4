"""aufs and devicemapper say why they cannot run instead of crashing.

This host really has neither, so the kernel-lacks path is tested for real.
The one mock in the storage tests is here: to show the other message path
(the kernel *has* aufs / device-mapper, berth still does not implement
them), /proc/filesystems and the dm paths are replaced by files under
tmp_path, because no CI kernel here can load aufs or dm_mod.
"""

from __future__ import annotations

import pytest

from berth.core import driverkit, plugins
from berth.core.errors import Unsupported
from berth.plugins.storage import unsupported


def test_registered_and_report_the_missing_kernel_feature():
    registry = plugins.drivers("storage")
    assert {"aufs", "devicemapper"} <= set(registry.names())
    with pytest.raises(Unsupported, match="storage driver 'aufs' is not supported on this host: the kernel has no aufs"):
        registry.supported("aufs")
    with pytest.raises(Unsupported, match="the kernel has no device-mapper"):
        registry.supported("devicemapper")


def test_constructing_raises_the_same_reason(tmp_path):
    with pytest.raises(Unsupported, match="no aufs filesystem"):
        unsupported.AufsDriver(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_faked_proc_filesystems_with_aufs(tmp_path, monkeypatch):
    # MOCK: no kernel here has aufs; fake /proc/filesystems to reach this message.
    fake = tmp_path / "filesystems"
    fake.write_text("nodev\tsysfs\n\text4\nnodev\taufs\n")
    monkeypatch.setattr(driverkit, "PROC_FILESYSTEMS", fake)
    assert "aufs" in driverkit.kernel_filesystems()
    assert unsupported.AufsDriver.unsupported_reason() == (
        "berth does not implement aufs (removed from Docker too); use overlay2"
    )


def test_faked_device_mapper_present(tmp_path, monkeypatch):
    # MOCK: no kernel here has device-mapper; fake its /dev/mapper/control.
    control = tmp_path / "control"
    control.touch()
    monkeypatch.setattr(unsupported, "DM_CONTROL", control)
    assert "does not implement devicemapper" in unsupported.DevicemapperDriver.unsupported_reason()


def test_overlay2_reports_missing_overlay(tmp_path, monkeypatch):
    # MOCK: this kernel has overlay; fake a /proc/filesystems without it.
    fake = tmp_path / "filesystems"
    fake.write_text("nodev\tsysfs\n\text4\n")
    monkeypatch.setattr(driverkit, "PROC_FILESYSTEMS", fake)
    from berth.plugins.storage.overlay2 import Overlay2Driver

    assert Overlay2Driver.unsupported_reason() == "the kernel has no overlay filesystem (try: modprobe overlay)"


def test_btrfs_refuses_a_home_not_on_btrfs(tmp_path):
    from berth.plugins.storage.btrfs import BtrfsDriver

    with pytest.raises(Unsupported, match="not on a btrfs filesystem"):
        BtrfsDriver(tmp_path / "home")
    assert not (tmp_path / "home").exists()


def test_overlay2_refuses_a_home_on_overlay(tmp_path):
    """A real overlay mount as the would-be home (not a mock)."""
    from berth.core.runtime import syscalls
    from berth.plugins.storage.overlay2 import Overlay2Driver

    for name in ("lower", "upper", "work", "merged"):
        (tmp_path / name).mkdir()
    syscalls.mount("overlay", str(tmp_path / "merged"), "overlay", 0,
                   f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work")
    try:
        with pytest.raises(Unsupported, match="is on an overlay filesystem"):
            Overlay2Driver(tmp_path / "merged" / "home")
        assert not (tmp_path / "merged" / "home").exists()
    finally:
        syscalls.umount2(str(tmp_path / "merged"), syscalls.MNT_DETACH)
