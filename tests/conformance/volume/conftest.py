"""Fixtures of the volume driver conformance suite.

The suite runs against every registered volume driver this host supports
(`berth.core.plugins.drivers("volume")`, so installed third-party drivers
too). ``BERTH_CONFORMANCE_VOLUME=name1,name2`` restricts the list::

    BERTH_CONFORMANCE_VOLUME=myvolume pytest tests/conformance/volume

Each case gets a fresh temporary home. Teardown unmounts whatever is still
mounted under the case's temporary directory (the driver's mounts and any
bind source) before deleting it, even when the case failed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from berth.core import plugins


def _selected_drivers() -> list[str]:
    registry = plugins.drivers("volume")
    wanted = os.environ.get("BERTH_CONFORMANCE_VOLUME")
    if wanted:
        return [n.strip() for n in wanted.split(",") if n.strip()]
    return [n for n in registry.names() if registry.get(n).unsupported_reason() is None]


def pytest_generate_tests(metafunc):
    if "driver_name" in metafunc.fixturenames:
        metafunc.parametrize("driver_name", _selected_drivers())


def _mounts_under(path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    root = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()[4].replace("\\040", " ")
            if p == root or p.startswith(root + "/"):
                points.append(p)
    return sorted(points, key=len, reverse=True)


@pytest.fixture(name="mounts_under")
def mounts_under_fixture():
    """mounts_under(path): mount points at or below path, deepest first."""
    return _mounts_under


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "volumes"
    yield home
    leftover = _mounts_under(tmp_path)
    for point in leftover:
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert not _mounts_under(tmp_path)


@pytest.fixture
def driver(driver_name, home):
    return plugins.drivers("volume").supported(driver_name)(home, {})
