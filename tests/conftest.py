"""Fixtures every berth test shares.

- `rootfs_tar(tmp_path)`: a busybox-static root filesystem as a tar file.
- `berth`: runs the real `berth` command as a subprocess against a
  per-test --root and --runroot (temporary, so nothing clashes with a real
  installation) and returns the CompletedProcess. `berth.env` / `berth.root`
  are exposed; `berth.image` imports the busybox image once per test on
  demand and returns its name.

Everything a test makes is torn down by the fixtures, even on failure. The
records berth keeps in ~/.cache (berth.core.plumbing.cache) go to a home of the
session's own, for the tests' processes and every berth they run.
"""

from __future__ import annotations

import secrets
import shutil

import pytest
from harness import Berth
from rootfs import make_rootfs_tar

from berth.core.plumbing import cache


@pytest.fixture(scope="session", autouse=True)
def own_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("XDG_CACHE_HOME", raising=False)
        mp.setattr(cache, "DIRECTORY", str(home / ".cache" / "berth"))
        yield home


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory):
    return make_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "busybox.tar")


@pytest.fixture
def berth(tmp_path, rootfs_tar):
    b = Berth(tmp_path / f"berth-{secrets.token_hex(3)}", rootfs_tar)
    yield b
    b.cleanup()
    shutil.rmtree(b.root, ignore_errors=True)
    shutil.rmtree(b.runroot, ignore_errors=True)


@pytest.fixture
def other(tmp_path, rootfs_tar):
    """A second, clean berth installation (the other machine of a push and pull)."""
    b = Berth(tmp_path / "other", rootfs_tar)
    yield b
    b.cleanup()
    shutil.rmtree(tmp_path / "other", ignore_errors=True)
