"""A full disk during pull and commit (issue #11): one line, 'no space left on device',
exit 1, no image and nothing half-made (`berth system check` is clean). berth's root lives
on a small tmpfs of the test's own."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from harness import Berth


@pytest.fixture
def small(tmp_path, rootfs_tar):
    """A berth installation whose root is a 12 MiB tmpfs."""
    b = Berth(tmp_path / "small", rootfs_tar)
    mount_point = tmp_path / "small" / "disk"
    mount_point.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)], check=True)
    b.root = mount_point / "root"
    try:
        yield b
    finally:
        b.cleanup()
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        shutil.rmtree(b.runroot, ignore_errors=True)


def full_disk_line(p) -> None:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and "no space left on device" in lines[0], p.stderr
    assert "internal error" not in p.stderr


def test_commit_on_a_full_disk(small):
    small("run", "--name", "writer", "--network", "none", small.image, "sh", "-c",
          "head -c 5000000 /dev/urandom > /big", check=True)
    full_disk_line(small("commit", "writer", "big:1"))
    assert small("images", "-q", "big", check=True).stdout == ""
    check = small("system", "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_pull_on_a_full_disk(berth, small, registry_open):
    name = f"{registry_open.location}/full/big:1"
    berth("run", "--name", "writer", "--network", "none", berth.image, "sh", "-c",
          "head -c 7000000 /dev/urandom > /big", check=True)
    berth("commit", "writer", name, check=True)
    berth("push", name, check=True)
    full_disk_line(small("pull", name))
    assert small("images", "-aq", check=True).stdout == ""
    check = small("system", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    leftovers = [n for n in os.listdir(small.root / "blobs" / "sha256")] if (small.root / "blobs").exists() else []
    assert all(len(n) == 64 for n in leftovers), leftovers  # whole blobs at most, no temporary file
