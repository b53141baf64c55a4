"""Broken third-party plugins, installed as distributions (a .dist-info with
an entry point in group "berth", on PYTHONPATH): each disables itself with
one warning line naming it, every command goes on working, and only a
command that needs a driver it would have provided fails; `plugin ls` and
`info` say which failed and why."""

from __future__ import annotations

import os

import pytest
from harness import install_plugin

BROKEN = {
    # entry point name: (module source, why it is disabled)
    "btimport": ("import btplug_missing_dependency\n",
                 "failed to load: ModuleNotFoundError: No module named 'btplug_missing_dependency'"),
    "btclash": ("""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_volume_drivers(register):
            register("local", "btplug_btclash:Local")
            register("btclashvol", "btplug_btclash:Other")
    """, "volume driver 'local' is registered by both plugin 'volume' and plugin 'btclash'"),
    "bttypo": ("""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_volume_drivers(registr):
            registr("bttypovol", "btplug_bttypo:Typo")
    """, "hook register_volume_drivers(registr): Argument(s) {'registr'} are declared in the hookimpl but can not "
         "be found in the hookspec"),
}


@pytest.fixture
def broken(berth, tmp_path):
    """berth with the BROKEN plugins installed beside its own."""
    site = tmp_path / "site"
    for name, (source, _) in BROKEN.items():
        install_plugin(site, name, source)
    berth.env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [berth.env.get("PYTHONPATH")] if p])
    berth.env.pop("BERTH_PLUGINS", None)
    return berth


def _warnings() -> set[str]:
    return {f"WARNING: plugin {name!r} (btplug_{name}) is disabled: {why}" for name, (_, why) in BROKEN.items()}


def test_every_command_works_and_says_once_which_plugins_are_disabled(broken):
    done = broken("volume", "create", "btvol")
    assert done.returncode == 0 and done.stdout == "btvol\n"
    assert set(done.stderr.splitlines()) == _warnings() and len(done.stderr.splitlines()) == len(BROKEN)
    listed = broken("volume", "ls", "-q")
    assert listed.returncode == 0 and listed.stdout == "btvol\n"
    assert set(listed.stderr.splitlines()) <= _warnings()
    run = broken("run", "--rm", "--network", "none", "-v", "btvol:/data", broken.image, "sh", "-c", "echo ok > /data/f")
    assert run.returncode == 0, run.stderr


def test_only_a_command_that_needs_a_disabled_plugins_driver_fails(broken):
    done = broken("volume", "create", "-d", "btclashvol", "btvol2")
    assert done.returncode == 125
    error = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: ")]
    assert len(error) == 1
    assert error[0].startswith("Error: unknown volume driver 'btclashvol' (available: local")  # (+ contrib's)
    assert "); plugin " in error[0]
    for name, (_, why) in BROKEN.items():
        assert f"; plugin {name!r} is disabled: {why}" in error[0]


def test_plugin_ls_and_info_name_each_plugin_its_version_drivers_and_failure(broken):
    rows = broken("plugin", "ls", "--no-trunc", "--format", "{{.Name}}|{{.Version}}|{{.Drivers}}|{{.Enabled}}|{{.Error}}")
    assert rows.returncode == 0, rows.stderr
    table = {line.split("|")[0]: line.split("|")[1:] for line in rows.stdout.splitlines()}
    assert table["volume"][1:3] == ["volume/local", "true"]
    assert table["storage"][2] == "true" and "storage/overlay2" in table["storage"][1]
    for name, (_, why) in BROKEN.items():
        assert table[name] == ["0.3", "", "false", why]
    info = broken("info").stdout
    assert "  volume (berth " in info and "): volume/local\n" in info
    for name, (_, why) in BROKEN.items():
        assert f"  {name} ({name} 0.3): disabled: {why}\n" in info
