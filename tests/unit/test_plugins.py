"""The plugin manager (berth.core.plugins): entry points, BERTH_PLUGINS,
name collisions, lazy "module:Class" drivers, unknown and unsupported
drivers, plugins that fail to import.

Fake plugins are real modules written to a temporary directory and found
through real `importlib.metadata.EntryPoint` objects; only the list of
installed entry points is replaced (`plugins._entry_points`). The record
of what plugins register lives in the session's own home (tests/conftest.py).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint, entry_points

import pytest

from berth.core import config, plugins
from berth.core.engine import Engine
from berth.core.errors import BerthError, InvalidArgument, Unsupported

DEFAULT_SET = {"storage", "network", "registry", "logging", "volume"}


@pytest.fixture(autouse=True)
def fresh_manager(monkeypatch):
    """Every test starts and ends with no plugin manager loaded."""
    monkeypatch.delenv("BERTH_PLUGINS", raising=False)
    monkeypatch.delenv("BERTH_TRACE_PLUGINS", raising=False)
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """fake(**modules) -> unique module names; fake.install({ep_name: module}) makes them the installed plugins.

    Module sources may use the placeholder ``MOD_<key>`` for the unique name of another module.
    """
    made: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    class Fake:
        def modules(self, **sources: str) -> dict[str, str]:
            names = {key: f"btplug_{key}_{secrets.token_hex(4)}" for key in sources}
            for key, source in sources.items():
                for other, unique in names.items():
                    source = source.replace(f"MOD_{other}", unique)
                (tmp_path / f"{names[key]}.py").write_text(textwrap.dedent(source))
                made.append(names[key])
            return names

        def install(self, eps: dict[str, str]) -> None:
            points = [EntryPoint(name=n, value=v, group="berth") for n, v in eps.items()]
            monkeypatch.setattr(plugins, "_entry_points", lambda: points)

    yield Fake()
    for name in made:
        sys.modules.pop(name, None)


REGISTER_VOLUME = """
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def register_volume_drivers(register):
        register({name!r}, {driver!r})
"""

DRIVER_MODULE = """
    from berth.core.drivers import VolumeDriver

    class BtDriver(VolumeDriver):
        name = {name!r}

        @classmethod
        def unsupported_reason(cls):
            return {reason!r}

        def create(self, name, options): pass
        def remove(self, name): pass
        def mount(self, name, container_id): return self.home
        def unmount(self, name, container_id): pass
        def path(self, name): return self.home / name
        def list(self): return []
"""


# -- the default set -------------------------------------------------------------


def test_default_set_loads_through_entry_points():
    installed = {ep.name: ep.value for ep in entry_points(group="berth")}
    assert DEFAULT_SET <= set(installed)
    pm = plugins.manager()
    loaded = dict(pm.list_name_plugin())
    assert set(loaded) == set(installed)  # every installed plugin, each once, under its entry point name
    for name in DEFAULT_SET:
        assert loaded[name].__name__ == installed[name] == f"berth.plugins.{name}"
    assert "local" in plugins.drivers("volume").names()
    assert {"overlay2", "vfs"} <= set(plugins.drivers("storage").names())
    assert {"bridge", "host", "none"} <= set(plugins.drivers("network").names())
    assert "json-file" in plugins.drivers("log").names()
    assert "docker" in plugins.drivers("registry").names()


def test_berth_plugins_restricts_which_plugins_load(monkeypatch):
    monkeypatch.setenv("BERTH_PLUGINS", "volume, logging")
    assert {name for name, _ in plugins.manager().list_name_plugin()} == {"volume", "logging"}
    assert plugins.drivers("volume").names() == ["local"]
    assert plugins.drivers("storage").names() == []


def test_empty_berth_plugins_loads_none(monkeypatch):
    monkeypatch.setenv("BERTH_PLUGINS", "")
    assert plugins.manager().list_name_plugin() == []
    with pytest.raises(InvalidArgument) as err:
        plugins.drivers("storage").get("overlay2")
    assert str(err.value) == "unknown storage driver 'overlay2' (available: none)"


# -- registration ----------------------------------------------------------------


def test_a_name_registered_by_two_plugins_disables_the_second_naming_both(fake, capsys):
    mods = fake.modules(a=REGISTER_VOLUME.format(name="btdup", driver="x:Y"),
                        b=REGISTER_VOLUME.format(name="btdup", driver="x:Z") + """
    @hookimpl
    def register_log_drivers(register):
        register("btsecondlog", "x:W")
""")
    fake.install({"btfirst": mods["a"], "btsecond": mods["b"]})
    registry = plugins.drivers("volume")
    assert registry.names() == ["btdup"] and registry._entries["btdup"] == ("x:Y", "btfirst")
    assert "btsecondlog" not in plugins.drivers("log").names()  # disabled whole
    assert not plugins.manager().has_plugin("btsecond")
    assert capsys.readouterr().err == (f"WARNING: plugin 'btsecond' ({mods['b']}) is disabled: volume driver 'btdup' "
                                       "is registered by both plugin 'btfirst' and plugin 'btsecond'\n")
    assert list(plugins.failed()) == ["btsecond"]


def test_a_module_class_string_is_imported_only_on_first_get(fake):
    mods = fake.modules(plugin=REGISTER_VOLUME.format(name="btlazy", driver="MOD_driver:BtDriver"),
                        driver=DRIVER_MODULE.format(name="btlazy", reason=None))
    fake.install({"btlazy": mods["plugin"]})
    registry = plugins.drivers("volume")
    assert registry.names() == ["btlazy"]
    assert mods["plugin"] in sys.modules
    assert mods["driver"] not in sys.modules  # registered, not imported
    cls = registry.get("btlazy")
    assert mods["driver"] in sys.modules
    assert cls is sys.modules[mods["driver"]].BtDriver
    assert registry.get("btlazy") is cls


def test_a_class_can_be_registered_directly(fake):
    mods = fake.modules(driver=DRIVER_MODULE.format(name="btdirect", reason=None),
                        plugin="""
        from berth.core.hookspecs import hookimpl
        from MOD_driver import BtDriver

        @hookimpl
        def register_volume_drivers(register):
            register("btdirect", BtDriver)
    """)
    fake.install({"btdirect": mods["plugin"]})
    assert plugins.drivers("volume").get("btdirect") is sys.modules[mods["driver"]].BtDriver


def test_an_unknown_driver_lists_the_available_ones(fake):
    mods = fake.modules(plugin="""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_storage_drivers(register):
            register("bttwo", "nowhere:Two")
            register("btone", "nowhere:One")
    """)
    fake.install({"btstorage": mods["plugin"]})
    with pytest.raises(InvalidArgument) as err:
        plugins.drivers("storage").get("x")
    assert str(err.value) == "unknown storage driver 'x' (available: btone, bttwo)"
    assert err.value.exit_code == 125


def test_an_unknown_driver_of_the_default_set():
    with pytest.raises(InvalidArgument) as err:
        plugins.drivers("storage").supported("x")
    assert str(err.value).startswith("unknown storage driver 'x' (available: ")
    assert "overlay2" in str(err.value) and "vfs" in str(err.value)


def test_an_unsupported_driver_says_why(fake):
    mods = fake.modules(plugin=REGISTER_VOLUME.format(name="btno", driver="MOD_driver:BtDriver"),
                        driver=DRIVER_MODULE.format(name="btno", reason="the kernel has no frobnicator"))
    fake.install({"btno": mods["plugin"]})
    registry = plugins.drivers("volume")
    with pytest.raises(Unsupported) as err:
        registry.supported("btno")
    assert str(err.value) == "volume driver 'btno' is not supported on this host: the kernel has no frobnicator"
    assert registry.get("btno").name == "btno"  # still listed and importable


# -- failures: a broken plugin disables itself, the others work ---------------------


def _only_warning(capsys, name: str, value: str) -> str:
    """The one stderr line about plugin `name`: its reason."""
    lines = capsys.readouterr().err.splitlines()
    prefix = f"WARNING: plugin {name!r} ({value}) is disabled: "
    assert len(lines) == 1 and lines[0].startswith(prefix), lines
    return lines[0][len(prefix):]


GOOD = REGISTER_VOLUME.format(name="btgood", driver="x:Good")


def test_a_plugin_that_fails_to_import_is_disabled_with_one_line(fake, capsys):
    mods = fake.modules(broken="import btplug_this_module_does_not_exist\n", good=GOOD)
    fake.install({"btbroken": mods["broken"], "btgood": mods["good"]})
    assert plugins.drivers("volume").names() == ["btgood"]
    reason = _only_warning(capsys, "btbroken", mods["broken"])
    assert reason == "failed to load: ModuleNotFoundError: No module named 'btplug_this_module_does_not_exist'"
    assert plugins.failed() == {"btbroken": (mods["broken"], reason)}
    with pytest.raises(InvalidArgument) as err:  # a command that needs a driver it would have had
        plugins.drivers("volume").get("btwanted")
    assert str(err.value) == f"unknown volume driver 'btwanted' (available: btgood); plugin 'btbroken' is disabled: {reason}"


def test_a_plugin_whose_import_raises_anything_is_disabled(fake, capsys):
    mods = fake.modules(broken="raise RuntimeError('btbroken is\\nbroken')\n", good=GOOD)
    fake.install({"btbroken": mods["broken"], "btgood": mods["good"]})
    plugins.manager()
    assert _only_warning(capsys, "btbroken", mods["broken"]) == "failed to load: RuntimeError: btbroken is broken"
    assert plugins.drivers("volume").names() == ["btgood"]


def test_a_missing_plugin_module_is_disabled(fake, capsys):
    gone = "btplug_gone_" + secrets.token_hex(4)
    fake.install({"btgone": gone})
    assert plugins.manager().list_name_plugin() == []
    assert _only_warning(capsys, "btgone", gone) == f"failed to load: ModuleNotFoundError: No module named '{gone}'"


def test_a_misspelt_hook_argument_is_disabled(fake, capsys):
    mods = fake.modules(typo="""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_volume_drivers(registr):
            registr("bttypo", "x:Y")
    """, good=GOOD)
    fake.install({"bttypo": mods["typo"], "btgood": mods["good"]})
    assert plugins.drivers("volume").names() == ["btgood"]
    reason = _only_warning(capsys, "bttypo", mods["typo"])
    assert reason.startswith("hook register_volume_drivers(registr): ") and "registr" in reason
    assert not plugins.manager().has_plugin("bttypo")


def test_a_misspelt_hook_name_is_disabled(fake, capsys):
    mods = fake.modules(typo="""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_volume_driver(register):
            register("bttypo", "x:Y")
    """, good=GOOD)
    fake.install({"bttypo": mods["typo"], "btgood": mods["good"]})
    assert plugins.drivers("volume").names() == ["btgood"]
    reason = _only_warning(capsys, "bttypo", mods["typo"])
    assert "register_volume_driver" in reason and "unknown hook" in reason


def test_a_registration_hook_that_raises_is_disabled(fake, capsys):
    mods = fake.modules(bad="""
        from berth.core.hookspecs import hookimpl

        @hookimpl
        def register_log_drivers(register):
            register("btfine", "x:Y")

        @hookimpl
        def register_volume_drivers(register):
            raise KeyError("btconfig")
    """, good=GOOD)
    fake.install({"btbad": mods["bad"], "btgood": mods["good"]})
    assert plugins.drivers("volume").names() == ["btgood"]
    assert "btfine" not in plugins.drivers("log").names()
    assert _only_warning(capsys, "btbad", mods["bad"]) == "registering its drivers failed: KeyError: 'btconfig'"


def test_a_broken_plugin_is_not_recorded_so_every_command_warns_again(fake, capsys):
    mods = fake.modules(broken="import btplug_this_module_does_not_exist\n", good=GOOD)
    fake.install({"btbroken": mods["broken"], "btgood": mods["good"]})
    points = [[ep.name, ep.value] for ep in plugins._entry_points()]
    plugins._save({"key": plugins._path_key(), "entry_points": points})
    plugins.manager()
    plugins.reset()
    assert plugins._registrations() is None
    plugins.drivers("volume")
    assert "WARNING: plugin 'btbroken'" in capsys.readouterr().err


def test_a_driver_module_that_fails_to_import_names_driver_and_plugin(fake):
    mods = fake.modules(plugin=REGISTER_VOLUME.format(name="btbad", driver="MOD_driver:BtDriver"),
                        driver="raise RuntimeError('btbad needs libfrob')\n")
    fake.install({"btbadplugin": mods["plugin"]})
    registry = plugins.drivers("volume")  # registration alone imports nothing
    with pytest.raises(BerthError) as err:
        registry.get("btbad")
    assert str(err.value) == "volume driver 'btbad' of plugin 'btbadplugin' failed to load: btbad needs libfrob"


# -- lifecycle hooks -------------------------------------------------------------


LIFECYCLE = """
    from berth.core.hookspecs import hookimpl

    seen = []

    @hookimpl
    def volume_removed(engine, name):
        seen.append(name)

    @hookimpl
    def engine_started(engine):
        raise RuntimeError("btplugin is broken")
"""


def test_lifecycle_hooks_get_their_arguments_and_failures_are_not_fatal(fake, tmp_path):
    mods = fake.modules(plugin=LIFECYCLE)
    fake.install({"btlife": mods["plugin"]})
    engine = Engine(config.load({"engine": {"root": str(tmp_path / "root"), "runroot": str(tmp_path / "run")}},
                                env={}))
    engine.hook("volume_removed", name="btvol")
    assert sys.modules[mods["plugin"]].seen == ["btvol"]
    engine.hook("engine_started")  # raises inside the plugin: logged, not raised


def test_trace_prints_every_hook_call(fake, monkeypatch, capsys):
    mods = fake.modules(plugin=LIFECYCLE)
    fake.install({"btlife": mods["plugin"]})
    monkeypatch.setenv("BERTH_TRACE_PLUGINS", "1")
    plugins.call("volume_removed", engine=None, name="bttraced")
    assert "volume_removed" in capsys.readouterr().err


STARTED = """
    from berth.core.hookspecs import hookimpl

    started = []

    @hookimpl
    def engine_started(engine):
        started.append(engine)
"""


def test_engine_started_fires_once_when_the_engine_first_needs_plugins(fake, tmp_path):
    mods = fake.modules(plugin=STARTED)
    fake.install({"btstart": mods["plugin"]})
    engine = Engine(config.load({"engine": {"root": str(tmp_path / "root"), "runroot": str(tmp_path / "run")}},
                                env={}))
    assert mods["plugin"] not in sys.modules  # constructing an engine loads no plugin
    engine.hook("volume_removed", name="btvol")
    engine.hook("volume_removed", name="btvol2")
    assert sys.modules[mods["plugin"]].started == [engine]


# -- the record of what the plugins register ------------------------------------------


def test_a_command_with_unchanged_plugins_skips_pluggy(tmp_path):
    """The first command records what the installed plugins register; the
    next finds its drivers and skips hooks nobody implements without pluggy."""
    code = ("import sys\nfrom berth.core import plugins\n"
            "cls = plugins.drivers('storage').get('overlay2')\n"
            "plugins.call('container_created', engine=None, container=None)\n"
            "print(cls.__name__, 'pluggy' in sys.modules)")
    env = dict(os.environ, HOME=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["Overlay2Driver", "True"], ["Overlay2Driver", "False"]]
    env["BERTH_PLUGINS"] = "storage"  # another plugin set: recorded anew
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert again.stdout.split() == ["Overlay2Driver", "True"]


LIFECYCLE_AND_VOLUME = REGISTER_VOLUME + """
    seen = []

    @hookimpl
    def volume_removed(engine, name):
        seen.append(name)
"""


def _recorded(fake, mods) -> None:
    """Make fake's entry points the installed ones, load them once (which records them), forget them."""
    points = [[ep.name, ep.value] for ep in plugins._entry_points()]
    plugins._save({"key": plugins._path_key(), "entry_points": points})
    plugins.manager()
    plugins.reset()


def test_the_record_serves_drivers_and_still_calls_implemented_hooks(fake):
    mods = fake.modules(plugin=LIFECYCLE_AND_VOLUME.format(name="btrec", driver="MOD_driver:BtDriver"),
                        driver=DRIVER_MODULE.format(name="btrec", reason=None))
    fake.install({"btrec": mods["plugin"]})
    _recorded(fake, mods)
    assert plugins.drivers("volume").get("btrec").__name__ == "BtDriver"
    assert plugins._manager is None  # from the record
    assert plugins.call("container_created", engine=None, container=None) == []
    assert plugins._manager is None  # nobody implements it
    plugins.call("volume_removed", engine=None, name="btvol")
    assert sys.modules[mods["plugin"]].seen == ["btvol"]  # implemented: called through pluggy


def test_a_changed_plugin_file_drops_the_record(fake):
    mods = fake.modules(plugin=REGISTER_VOLUME.format(name="btold", driver="x:Y"))
    fake.install({"btchange": mods["plugin"]})
    _recorded(fake, mods)
    path = sys.modules[mods["plugin"]].__file__
    with open(path, "w") as f:
        f.write(textwrap.dedent(REGISTER_VOLUME.format(name="btnew-and-longer", driver="x:Z")))
    sys.modules.pop(mods["plugin"])
    assert plugins.drivers("volume").names() == ["btnew-and-longer"]
    assert plugins._manager is not None


def test_pluggys_own_marker_works_too(fake):
    mods = fake.modules(plugin="""
        import pluggy

        @pluggy.HookimplMarker("berth")
        def register_volume_drivers(register):
            register("btpluggy", "x:Y")
    """)
    fake.install({"btpluggy": mods["plugin"]})
    assert plugins.drivers("volume").names() == ["btpluggy"]


def test_a_damaged_record_is_ignored():
    plugins._save({"key": plugins._path_key(), "entry_points": [["x", "y"]], "registrations": "junk"})
    plugins.reset()
    assert plugins._registrations() is None
    plugins._save({"key": plugins._path_key(), "entry_points": 5})
    plugins.reset()
    assert DEFAULT_SET <= {ep.name for ep in plugins._entry_points()}  # scanned again
