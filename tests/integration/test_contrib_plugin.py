"""A third-party plugin, installed the way a user installs one, works end to end.

contrib/berth-volume-tmpfs is pip-installed (a real wheel build, --no-deps)
into a temporary directory that is put on PYTHONPATH of subprocesses only:
berth finds it through the entry point in its .dist-info, exactly as it
would find any installed distribution. Then the conformance kit runs the
volume suite against it, and the `berth` CLI uses it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "contrib" / "berth-volume-tmpfs"


def _mounts_under(path) -> list[str]:
    root = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p == root or p.startswith(root + "/")), key=len, reverse=True)


def _tmpfs_options(path) -> str | None:
    """The mount options of the tmpfs mounted exactly at `path`, or None."""
    with open("/proc/mounts") as f:
        for line in f:
            _, point, fstype, options = line.split()[:4]
            if point == os.path.realpath(path) and fstype == "tmpfs":
                return options
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A directory holding only the installed plugin (berth itself comes from the venv)."""
    base = tmp_path_factory.mktemp("contrib")
    source = base / "src"
    # build from a copy: a wheel build writes build/ and *.egg-info next to the sources
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = base / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
                           "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(target.glob("berth_volume_tmpfs-*.dist-info/entry_points.txt"))
    yield target
    shutil.rmtree(base, ignore_errors=True)


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env.pop("BERTH_PLUGINS", None)  # every installed plugin loads
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return env


def test_the_kit_runs_the_volume_suite_against_it(site, tmp_path):
    """As its author would: `pytest --berth-conformance volume:tmpfs` in a directory of their own."""
    own = tmp_path / "author"
    own.mkdir()
    basetemp = tmp_path / "suite"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", f"--basetemp={basetemp}",
             "--berth-conformance", "volume:tmpfs"],
            cwd=own, env=_env(site), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert "TestVolume::test_registered_name_matches[tmpfs] PASSED" in done.stdout
        assert "TestVolume::test_data_persists_across_mounts_and_instances[tmpfs] PASSED" in done.stdout
        assert "[local" not in done.stdout  # only the driver asked for
        assert not _mounts_under(basetemp)
    finally:
        for point in _mounts_under(basetemp):
            subprocess.run(["umount", "-l", point], capture_output=True)


def test_berth_creates_uses_and_removes_a_tmpfs_volume(site, berth):
    berth.env["BERTH_PLUGINS"] = "storage,network,registry,logging,volume"  # berth's own (CI installs contrib too)
    without = berth("volume", "create", "-d", "tmpfs", "btv0")
    assert without.returncode == 125
    assert without.stderr.startswith("Error: unknown volume driver 'tmpfs' (available: ")  # not part of berth

    berth.env = _env(site, **{k: v for k, v in berth.env.items() if k != "PYTHONPATH"})
    try:
        assert berth("volume", "create", "-d", "tmpfs", "-o", "size=8m", "btv1", check=True).stdout == "btv1\n"
        [info] = json.loads(berth("volume", "inspect", "btv1", check=True).stdout)
        assert info["Driver"] == "tmpfs" and info["Name"] == "btv1"
        assert info["Options"] == {"size": "8m"} and info["Scope"] == "local"
        mountpoint = Path(info["Mountpoint"])
        assert "size=8192k" in _tmpfs_options(mountpoint)  # its own 8 MiB tmpfs

        run = berth("run", "--rm", "--mount", "type=volume,src=btv1,dst=/data,volume-driver=tmpfs", berth.image,
                    "sh", "-c", "echo kept > /data/f", timeout=120)
        assert run.returncode == 0, run.stderr
        assert (mountpoint / "f").read_text() == "kept\n"  # outlives the container, in memory

        bad = berth("volume", "create", "-d", "tmpfs", "-o", "type=tmpfs", "btv2")
        assert bad.returncode == 125
        assert bad.stderr == 'Error: invalid option: "type" (the tmpfs volume driver takes only "size")\n'

        assert "tmpfs     btv1" in berth("volume", "ls", check=True).stdout
        berth("volume", "rm", "btv1", check=True)
        assert _tmpfs_options(mountpoint) is None and not mountpoint.exists()
        assert berth("volume", "ls", "-q", check=True).stdout == ""
    finally:
        berth.cleanup()  # removes containers, unmounts whatever is left under the root
        assert not _mounts_under(berth.root)
