"""The conformance kit as a driver author uses it: `pytest --berth-conformance
KIND:DRIVER` in a directory of their own, outside berth's checkout, with
nothing but the installed berth and pytest (no conftest, no tests/ on the
path). One run covers the five kinds; each must have run and passed its cases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from berth.testing.support import mounts_under

KINDS = {"volume": "local", "logging": "json-file", "storage": "vfs", "network": "bridge", "registry": "docker"}


def kit(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(env or os.environ)
    environment.pop("PYTHONPATH", None)  # the installed berth only
    return subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                           f"--basetemp={cwd / 'tmp'}", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=600)


def outcomes(stdout: str) -> dict[str, list[tuple[str, str]]]:
    """suite class -> [(case, outcome)] from pytest -v lines."""
    found: dict[str, list[tuple[str, str]]] = {}
    for suite, case, outcome in re.findall(r"::(Test\w+)::(\S+) (PASSED|FAILED|ERROR|SKIPPED)", stdout):
        found.setdefault(suite, []).append((case, outcome))
    return found


def test_the_kit_runs_every_kind_from_a_directory_of_ones_own(tmp_path):
    own = tmp_path / "my-driver"
    own.mkdir()
    args = [f"--berth-conformance={kind}:{name}" for kind, name in KINDS.items()]
    done = kit(own, *args)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    ran = outcomes(done.stdout)
    assert sorted(ran) == ["TestLogging", "TestNetwork", "TestRegistry", "TestStorage", "TestVolume"]
    for kind, name in KINDS.items():
        cases = ran[f"Test{kind.capitalize()}"]
        assert len(cases) >= 5, (kind, cases)
        assert all(outcome == "PASSED" and f"[{name}" in case for case, outcome in cases), (kind, cases)
    assert ("test_data_persists_across_mounts_and_instances[local]", "PASSED") in ran["TestVolume"]
    assert ("test_export_round_trip[vfs]", "PASSED") in ran["TestStorage"]
    assert ("test_namespaces_on_one_network_reach_each_other[bridge]", "PASSED") in ran["TestNetwork"]
    assert ("test_unreadable_driver_refuses_cleanly[json-file]", "PASSED") not in ran["TestLogging"]  # deselected
    assert " deselected" in done.stdout.splitlines()[-1]
    assert sorted(p.name for p in own.iterdir()) == ["tmp"]  # it wrote nothing but its temporary files
    assert not mounts_under(own)


def test_a_wrong_driver_or_kind_or_a_missing_tool_is_one_usage_error(tmp_path):
    done = kit(tmp_path, "--berth-conformance", "volume:btnosuch")
    assert done.returncode == 4
    assert "ERROR: --berth-conformance volume:btnosuch: unknown volume driver 'btnosuch' (available: " in done.stderr
    done = kit(tmp_path, "--berth-conformance", "floppy:x")
    assert done.returncode == 4
    assert "unknown kind 'floppy'" in done.stderr
    empty = tmp_path / "empty-path"
    empty.mkdir()
    done = kit(tmp_path, "--berth-conformance", "network:none", env=dict(os.environ, PATH=str(empty)))
    assert done.returncode == 4
    assert "ERROR: --berth-conformance network:none: the network suite needs ip, which is not on PATH" in done.stderr
