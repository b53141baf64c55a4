"""The contrib drivers run through the kit with berth's own.

Each directory of contrib/ holding a plugin is its own distribution,
packaged as a third party packages one. CI installs every one beside berth
(.ci/run), and the suites of this directory take their drivers with
berth's: storage, volume and logging run every registered driver this host
supports, network and registry the drivers their DRIVERS list. This checks
that nothing is silently left out: each contrib distribution is installed
(at its checkout's version), enabled, and each of its drivers is supported
here and among the drivers its kind's suite runs.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from berth.core import plugins
from berth.testing.plugin import selected_drivers

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: berth.core.plugins' kind -> (the kit's kind, this directory's suite module, its class)
SUITES = {"storage": ("storage", "test_storage_drivers.py", "TestStorage"),
          "volume": ("volume", "test_volume_drivers.py", "TestVolume"),
          "log": ("logging", "test_log_drivers.py", "TestLogging"),
          "network": ("network", "test_network_drivers.py", "TestNetwork"),
          "registry": ("registry", "test_registry_drivers.py", "TestRegistry")}


def _contrib() -> list[tuple[str, str]]:
    """(directory, distribution name) of every contrib plugin."""
    found = []
    for pyproject in sorted(REPO.glob("contrib/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        if "berth" in project.get("entry-points", {}):
            found.append((pyproject.parent.name, project["name"]))
    return found


def _suite_drivers(config, kind: str) -> list[str]:
    kit_kind, filename, cls_name = SUITES[kind]
    spec = importlib.util.spec_from_file_location(f"_bt_suite_{kit_kind}", HERE / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return selected_drivers(config, kit_kind, getattr(module, cls_name).DRIVERS)


def test_there_are_contrib_plugins():
    assert len(_contrib()) >= 3


@pytest.mark.parametrize("directory, distribution", _contrib(), ids=[d for d, _ in _contrib()])
def test_contrib_plugin_is_installed_and_its_drivers_run_through_the_kit(request, directory, distribution):
    rows = [row for row in plugins.describe() if row["Distribution"] == distribution]
    assert rows, (f"{distribution} is not installed in this environment: pip install ./contrib/{directory} "
                  "(as .ci/run does)")
    version = tomllib.loads((REPO / "contrib" / directory / "pyproject.toml").read_text())["project"]["version"]
    for row in rows:
        assert row["Enabled"], row["Error"]
        assert row["Version"] == version, f"{distribution} {row['Version']} is installed, the checkout has {version}"
        assert row["Drivers"], f"plugin {row['Name']} registers no driver"
        for driver in row["Drivers"]:
            kind, name = driver.split("/", 1)
            assert plugins.drivers(kind).get(name).unsupported_reason() is None
            assert name in _suite_drivers(request.config, kind), f"the {kind} suite does not run {name}"
