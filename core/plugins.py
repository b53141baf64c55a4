"""The plugin manager: every plugin, builtin or third-party, comes the same way.

Plugins are the entry points of group ``berth``; the default set is declared
in berth's own pyproject.toml exactly as a third party declares its own.

What the installed plugins register (their drivers, which lifecycle hooks
they implement) is remembered in ~/.cache/berth (berth.core.plumbing.cache), so a command
whose plugins are unchanged resolves its drivers and skips hooks nobody
implements without importing pluggy (and its inspect and typing: ~10 ms a
command). The record is dropped when a distribution is installed or removed
(the sys.path directories change), when a plugin module's file changes, or
for another BERTH_PLUGINS. Registration hooks must therefore register the
same drivers every time; a driver that cannot run on some host says so
through its `unsupported_reason()`.

Environment:
- ``BERTH_PLUGINS``: comma-separated entry point names; only these load
  (empty string: none). Unset: all installed plugins load.
- ``BERTH_TRACE_PLUGINS=1``: print every hook call to stderr (always
  through pluggy).
"""

from __future__ import annotations

import importlib
import os
import sys

from berth.core import hookspecs
from berth.core.errors import BerthError, InvalidArgument, Unsupported
from berth.core.plumbing import cache

KINDS = ("storage", "network", "volume", "log", "registry")

_manager = None  # the pluggy.PluginManager, once loaded
_files: dict[str, int | None] = {}  # plugin module file -> mtime, for the record


def manager():
    """The process-wide pluggy.PluginManager, loading the plugins on first use."""
    global _manager
    if _manager is None:
        import pluggy

        class Manager(pluggy.PluginManager):
            """Reads berth's own markers (berth.core.hookspecs) through pluggy's."""

            def parse_hookspec_opts(self, module_or_class, name):
                marked = _mark(module_or_class, name, "berth_hookspec")
                if marked is not None:
                    return pluggy.HookspecMarker("berth")(lambda: None, **marked).berth_spec
                return super().parse_hookspec_opts(module_or_class, name)

            def parse_hookimpl_opts(self, plugin, name):
                marked = _mark(plugin, name, "berth_hookimpl")
                if marked is not None:
                    return pluggy.HookimplMarker("berth")(lambda: None, **marked).berth_impl
                return super().parse_hookimpl_opts(plugin, name)

        pm = Manager("berth")
        pm.add_hookspecs(hookspecs)
        only = _only()
        loaded = []
        for ep in _entry_points():
            if only is not None and ep.name not in only:
                continue
            if pm.has_plugin(ep.name):
                continue
            before = set(sys.modules)
            try:
                plugin = ep.load()
            except Exception as exc:  # re-raise with the plugin's name in it
                raise BerthError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            pm.register(plugin, name=ep.name)
            loaded.append((ep.name, ep.value))
            _note_files(ep.value, set(sys.modules) - before)
        if os.environ.get("BERTH_TRACE_PLUGINS"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        _manager = pm
        _remember(pm, loaded)
    return _manager


def _mark(holder, name: str, attribute: str) -> dict | None:
    """The options berth.core.hookspecs recorded on a function `name` of `holder` (as pluggy: functions only)."""
    import inspect

    function = inspect.getattr_static(holder, name, None)
    if isinstance(function, (staticmethod, classmethod)):
        function = function.__func__
    if not inspect.isroutine(function):
        return None
    marked = getattr(function, attribute, None)
    return marked if isinstance(marked, dict) else None


def _only() -> set[str] | None:
    wanted = os.environ.get("BERTH_PLUGINS")
    return None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}


class _EntryPoint:
    """The part of importlib.metadata.EntryPoint the manager uses."""

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value

    def load(self):
        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _entry_points() -> list:
    """Entry points of group `berth`, from the record when it is current.

    Scanning every installed distribution costs ~20 ms a command; the
    record is keyed by the modification times of the sys.path directories,
    which change whenever a distribution is installed or removed there.
    """
    record = _record()
    if record.get("key") == _path_key():
        try:
            return [_EntryPoint(n, v) for n, v in record["entry_points"]]
        except (KeyError, TypeError, ValueError):
            pass  # a damaged record: scan again
    from importlib.metadata import entry_points

    found = [[ep.name, ep.value] for ep in entry_points(group="berth")]
    _save({"key": _path_key(), "entry_points": found})
    return [_EntryPoint(n, v) for n, v in found]


def _path_key() -> list:
    key = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


# One record per Python installation: several berths on one host do not take turns rewriting it.
_RECORD = "plugins" + sys.prefix.replace(os.sep, "_") + ".json"
_cached: dict | None = None


def _record() -> dict:
    global _cached
    if _cached is None:
        _cached = cache.load(_RECORD)
    return _cached


def _save(record: dict) -> None:
    global _cached
    _cached = record
    cache.save(_RECORD, record)


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _note_files(value: str, new_modules: set[str]) -> None:
    """The files of a plugin: its entry point's module and what it imported of its own package."""
    module = value.partition(":")[0].strip()
    for name in {module, *(m for m in new_modules if m.startswith(module + "."))}:
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            _files[path] = _mtime(path)


def _registrations() -> dict | None:
    """What the loaded plugins registered, from the record, while it is true."""
    global _checked
    if _checked is None:
        _checked = [_current_registrations()]
    return _checked[0]


_checked: list | None = None  # [_current_registrations()], once per process


def _current_registrations() -> dict | None:
    if os.environ.get("BERTH_TRACE_PLUGINS"):
        return None
    eps = [[ep.name, ep.value] for ep in _entry_points()]
    record = _record()
    found = record.get("registrations")
    if not isinstance(found, dict) or record.get("entry_points") != eps \
            or found.get("only") != os.environ.get("BERTH_PLUGINS") \
            or not all(isinstance(found.get(part), dict) for part in ("files", "drivers", "hooks")):
        return None
    if any(_mtime(path) != mtime for path, mtime in found["files"].items()):
        return None
    return found


def _remember(pm, loaded: list) -> None:
    """Record what the plugins just loaded register (see the module's doc);
    only for the installed entry points, never for a replaced list (tests)."""
    record = _record()
    eps = record.get("entry_points")
    only = _only()
    if eps is None or [pair for pair in eps if only is None or pair[0] in only] != [list(p) for p in loaded]:
        return
    drivers: dict[str, dict | None] = {}
    for kind in KINDS:
        try:
            registry = _registries.setdefault(kind, DriverRegistry(kind))
            drivers[kind] = {name: [_target(driver), plugin] for name, (driver, plugin) in registry._entries.items()}
            if any(target is None for target, _ in drivers[kind].values()):
                drivers[kind] = None  # a driver no "module:Class" names: always through pluggy
        except BerthError:
            drivers[kind] = None  # the error is raised where the kind is used
    hooks = {name: len(getattr(pm.hook, name).get_hookimpls()) for name in dir(hookspecs)
             if hasattr(getattr(hookspecs, name), "berth_hookspec")}
    record = dict(record, registrations={"only": os.environ.get("BERTH_PLUGINS"), "files": dict(_files),
                                         "drivers": drivers, "hooks": hooks})
    _save(record)


def _target(driver) -> str | None:
    """"module:Class" for a driver, if that names it."""
    if isinstance(driver, str):
        return driver
    module, name = getattr(driver, "__module__", None), getattr(driver, "__qualname__", "")
    try:
        obj = sys.modules[module]
        for part in name.split("."):
            obj = getattr(obj, part)
    except (KeyError, AttributeError, TypeError):
        return None
    return f"{module}:{name}" if obj is driver else None


def reset() -> None:
    """Forget the loaded plugins (tests register their own)."""
    global _manager, _cached, _checked
    _manager = None
    _cached = None
    _checked = None
    _files.clear()
    _registries.clear()


class DriverRegistry:
    """The drivers of one kind that the plugins registered, by name:
    `entries` as recorded (see the module's doc), else from the plugins."""

    def __init__(self, kind: str, entries: dict | None = None):
        self.kind = kind
        self._entries: dict[str, tuple[object, str]] = {}
        if entries is not None:
            self._entries = {name: (target, plugin) for name, (target, plugin) in entries.items()}
            return
        hook = getattr(manager().hook, _HOOKS[kind])
        for impl in hook.get_hookimpls():
            impl.function(register=self._registrar(impl.plugin_name))

    def _registrar(self, plugin_name: str):
        def register(name: str, driver: object) -> None:
            if name in self._entries:
                other = self._entries[name][1]
                raise BerthError(
                    f"{self.kind} driver {name!r} is registered by both plugin {other!r} and plugin {plugin_name!r}"
                )
            self._entries[name] = (driver, plugin_name)

        return register

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> type:
        """The driver class called `name`, importing it on first use."""
        try:
            driver, plugin_name = self._entries[name]
        except KeyError:
            raise InvalidArgument(
                f"unknown {self.kind} driver {name!r} (available: {', '.join(self.names()) or 'none'})"
            ) from None
        if isinstance(driver, str):
            module, _, attr = driver.partition(":")
            try:
                driver = getattr(importlib.import_module(module), attr)
            except Exception as exc:
                raise BerthError(f"{self.kind} driver {name!r} of plugin {plugin_name!r} failed to load: {exc}") from exc
            self._entries[name] = (driver, plugin_name)
        return driver

    def supported(self, name: str) -> type:
        """Like get, but raise Unsupported when this host cannot run it."""
        cls = self.get(name)
        reason = cls.unsupported_reason()
        if reason:
            raise Unsupported(f"{self.kind} driver {name!r} is not supported on this host: {reason}")
        return cls


_HOOKS = {
    "storage": "register_storage_drivers",
    "network": "register_network_drivers",
    "volume": "register_volume_drivers",
    "log": "register_log_drivers",
    "registry": "register_registries",
}

_registries: dict[str, DriverRegistry] = {}


def drivers(kind: str) -> DriverRegistry:
    """The DriverRegistry of `kind` (one of KINDS), built on first use."""
    if kind not in _registries:
        found = _registrations() if _manager is None else None
        _registries[kind] = DriverRegistry(kind, (found["drivers"].get(kind) if found else None))
    return _registries[kind]


def call(hook_name: str, **kwargs) -> list:
    """Call a lifecycle hook on every plugin (none implement it: no pluggy)."""
    if _manager is None:
        found = _registrations()
        if found is not None and found["hooks"].get(hook_name, 1) == 0:
            return []
    return getattr(manager().hook, hook_name)(**kwargs)
