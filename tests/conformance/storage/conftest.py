"""Fixtures of the storage conformance suite.

The suite runs against every registered storage driver this host supports
(`berth.core.plugins.drivers("storage")`, so installed third-party drivers
too). ``BERTH_CONFORMANCE_STORAGE=name1,name2`` restricts the list, e.g. to
run only your own driver::

    BERTH_CONFORMANCE_STORAGE=mystorage pytest tests/conformance/storage

Each case gets a fresh temporary home. A driver that needs a special
filesystem declares it in HOME_FACTORIES (btrfs gets a loop-device btrfs,
made once per session and torn down at its end). When a case fails, the
report gets a listing of every home the case used.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from berth.core import plugins


def _selected_drivers() -> list[str]:
    registry = plugins.drivers("storage")
    wanted = os.environ.get("BERTH_CONFORMANCE_STORAGE")
    names = [n.strip() for n in wanted.split(",") if n.strip()] if wanted else registry.names()
    if wanted:
        return names  # asked for explicitly: an unsupported one fails loudly, not silently
    return [n for n in names if registry.get(n).unsupported_reason() is None]


def pytest_generate_tests(metafunc):
    if "driver_name" in metafunc.fixturenames:
        metafunc.parametrize("driver_name", _selected_drivers())


class BtrfsLoop:
    """A 512 MiB btrfs filesystem on a loop device, in a temporary directory."""

    def __init__(self, base: Path):
        self.base = base
        self.image = base / "btrfs.img"
        self.mountpoint = base / "mnt"
        self.device = None
        self.mounted = False

    def setup(self) -> None:
        self.mountpoint.mkdir()
        with open(self.image, "wb") as f:
            f.truncate(512 << 20)
        subprocess.run(["mkfs.btrfs", "-q", str(self.image)], check=True, capture_output=True)
        self.device = subprocess.run(
            ["losetup", "--find", "--show", str(self.image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["mount", "-t", "btrfs", self.device, str(self.mountpoint)], check=True, capture_output=True)
        self.mounted = True

    def teardown(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=True, capture_output=True)
            self.mounted = False
        if self.device:
            subprocess.run(["losetup", "-d", self.device], check=True, capture_output=True)
            self.device = None


@pytest.fixture(scope="session")
def btrfs_loop(tmp_path_factory):
    loop = BtrfsLoop(tmp_path_factory.mktemp("btrfs"))
    try:
        loop.setup()
        yield loop
    finally:
        loop.teardown()


def _btrfs_home(request) -> Path:
    return request.getfixturevalue("btrfs_loop").mountpoint / f"home-{secrets.token_hex(4)}"


#: driver name -> function(request) giving a fresh home on the filesystem that driver needs
HOME_FACTORIES = {"btrfs": _btrfs_home}


def tree_listing(root: Path) -> str:
    """One line per entry under root: mode, owner, size, path, link target."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError as exc:
                lines.append((path, f"?? {path}: {exc}"))
                continue
            target = f" -> {os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else ""
            lines.append((path, f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} {st.st_size:>9} {path}{target}"))
    return "\n".join(line for _, line in sorted(lines))


@pytest.fixture
def make_driver(request, tmp_path, driver_name):
    """make_driver() -> a new driver instance of the case's kind on a fresh home."""
    registry = plugins.drivers("storage")
    cls = registry.supported(driver_name)
    made = []
    request.node.storage_homes = []

    def make():
        factory = HOME_FACTORIES.get(driver_name)
        home = factory(request) if factory else tmp_path / f"home-{secrets.token_hex(4)}"
        driver = cls(home, {})
        made.append(driver)
        request.node.storage_homes.append(home)
        return driver

    yield make
    for driver in made:
        driver.cleanup()
        for point in _mounts_under(driver.home):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(driver.home, ignore_errors=True)


@pytest.fixture
def driver(make_driver):
    return make_driver()


def _mounts_under(path: Path) -> list[str]:
    base = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == base or point.startswith(base + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    homes = getattr(item, "storage_homes", None)
    if report.when == "call" and report.failed and homes:
        for home in homes:
            mounted = "\n".join(_mounts_under(home)) or "(none)"
            report.sections.append((f"storage home {home}", f"mounts:\n{mounted}\n\ntree:\n{tree_listing(home)}"))
