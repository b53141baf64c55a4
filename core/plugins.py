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
    """The process-wide pluggy.PluginManager, loading the plugins on first use.

    A plugin that fails -- its import raises, pluggy refuses it (a hook
    argument or hook name that the contract does not have), a registration
    hook raises, or it registers a driver name an earlier plugin has -- is
    disabled: it is unregistered, none of its drivers exist, `failed()`
    says why, and one "WARNING:" line naming it goes to stderr. Every other
    plugin works; only commands that need a driver of the failed one fail.
    """
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
            if pm.has_plugin(ep.name) or ep.name in _failed:
                continue
            before = set(sys.modules)
            try:
                plugin = ep.load()
            except Exception as exc:
                _disable(pm, ep.name, ep.value, f"failed to load: {_one_line(exc)}")
                continue
            try:
                pm.register(plugin, name=ep.name)
                pm.check_pending()  # a hook name the contract does not have
            except pluggy.PluginValidationError as exc:
                _disable(pm, ep.name, ep.value, _validation_error(exc))
                continue
            loaded.append((ep.name, ep.value))
            _note_files(ep.value, set(sys.modules) - before)
        _build_registries(pm, loaded)
        if os.environ.get("BERTH_TRACE_PLUGINS"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        _manager = pm
        if not _failed:  # a broken installation is not recorded: each command says so again
            _remember(pm, loaded)
    return _manager


_failed: dict[str, tuple[str, str]] = {}  # entry point name -> (its value, why it is disabled)


def failed() -> dict[str, tuple[str, str]]:
    """The disabled plugins of this process: entry point name -> (value, reason)."""
    if _manager is None and _registrations() is None:
        manager()
    return dict(_failed)


def _disable(pm, name: str, value: str, reason: str) -> None:
    if pm.has_plugin(name):
        pm.unregister(name=name)
    _failed[name] = (value, reason)
    sys.stderr.write(f"WARNING: plugin {name!r} ({value}) is disabled: {reason}\n")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _validation_error(exc) -> str:
    """pluggy's several-line PluginValidationError as one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    hook = next((line.split("definition:", 1)[1].strip() for line in lines if "definition:" in line), "")
    why = lines[-1] if lines else "refused by pluggy"
    if why.startswith("unknown hook "):  # "... in plugin <module ...>": the plugin is named already
        return why.split(" in plugin ", 1)[0] + " (berth.core.hookspecs has no such hook)"
    return f"hook {hook}: {why}" if hook else why


def _build_registries(pm, loaded: list) -> None:
    """Call every registration hook, one plugin at a time: berth's own
    (berth.plugins.*) first, then the others in entry point order. A plugin
    whose registration raises, or that registers a name an earlier one has,
    is disabled whole."""
    entries: dict[str, dict[str, tuple[object, str]]] = {kind: {} for kind in KINDS}
    for plugin_name, value in sorted(loaded, key=lambda pair: not pair[1].startswith("berth.plugins.")):
        got: list[tuple[str, str, object]] = []
        try:
            for kind in KINDS:
                for impl in getattr(pm.hook, _HOOKS[kind]).get_hookimpls():
                    if impl.plugin_name == plugin_name:
                        impl.function(register=lambda name, driver, kind=kind, got=got: got.append((kind, name, driver)))
        except Exception as exc:
            _disable(pm, plugin_name, value, f"registering its drivers failed: {_one_line(exc)}")
            continue
        clash = None
        seen = set()
        for kind, name, _ in got:
            if name in entries[kind] or (kind, name) in seen:
                other = entries[kind][name][1] if name in entries[kind] else plugin_name
                clash = f"{kind} driver {name!r} is registered by both plugin {other!r} and plugin {plugin_name!r}"
                break
            seen.add((kind, name))
        if clash:
            _disable(pm, plugin_name, value, clash)
            continue
        for kind, name, driver in got:
            entries[kind][name] = (driver, plugin_name)
    loaded[:] = [pair for pair in loaded if pair[0] not in _failed]
    for kind in KINDS:
        _registries[kind] = DriverRegistry(kind, {n: list(e) for n, e in entries[kind].items()})


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
    if set(found["hooks"]) != set(_hook_names()):  # recorded by a berth with other hooks
        return None
    return found


def _hook_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "berth_hookspec")]


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
        registry = _registries[kind]
        drivers[kind] = {name: [_target(driver), plugin] for name, (driver, plugin) in registry._entries.items()}
        if any(target is None for target, _ in drivers[kind].values()):
            drivers[kind] = None  # a driver no "module:Class" names: always through pluggy
    hooks = {name: len(getattr(pm.hook, name).get_hookimpls()) for name in _hook_names()}
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
    _failed.clear()


class DriverRegistry:
    """The drivers of one kind that the plugins registered, by name:
    `entries` maps a name to [driver or "module:Class", plugin name]."""

    def __init__(self, kind: str, entries: dict):
        self.kind = kind
        self._entries: dict[str, tuple[object, str]] = {name: (target, plugin)
                                                        for name, (target, plugin) in entries.items()}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> type:
        """The driver class called `name`, importing it on first use."""
        try:
            driver, plugin_name = self._entries[name]
        except KeyError:
            disabled = "".join(f"; plugin {n!r} is disabled: {why}" for n, (_, why) in _failed.items())
            raise InvalidArgument(
                f"unknown {self.kind} driver {name!r} (available: {', '.join(self.names()) or 'none'}){disabled}"
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
        recorded = found["drivers"].get(kind) if found else None
        if recorded is not None:
            _registries[kind] = DriverRegistry(kind, recorded)
        else:
            manager()  # builds every kind's registry
    return _registries[kind]


def call(hook_name: str, **kwargs) -> list:
    """Call a lifecycle hook on every plugin (none implement it: no pluggy)."""
    if _manager is None:
        found = _registrations()
        if found is not None and found["hooks"].get(hook_name, 1) == 0:
            return []
    return getattr(manager().hook, hook_name)(**kwargs)


def describe() -> list[dict]:
    """Every installed plugin that BERTH_PLUGINS lets load, in entry point order:
    Name, Module, Distribution, Version, Drivers (["kind/name", ...]),
    Enabled, Error (why it is disabled, else "")."""
    from importlib.metadata import entry_points

    registries = [drivers(kind) for kind in KINDS]
    disabled = failed()
    dists = {ep.name: ep.dist for ep in entry_points(group="berth")}
    only = _only()
    out = []
    for ep in _entry_points():
        if only is not None and ep.name not in only:
            continue
        dist = dists.get(ep.name)
        names = sorted(f"{r.kind}/{n}" for r in registries for n, (_, plugin) in r._entries.items() if plugin == ep.name)
        out.append({"Name": ep.name, "Module": ep.value, "Distribution": dist.name if dist else "",
                    "Version": dist.version if dist else "", "Drivers": names, "Enabled": ep.name not in disabled,
                    "Error": disabled[ep.name][1] if ep.name in disabled else ""})
    return out
