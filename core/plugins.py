"""The plugin manager: every plugin, builtin or third-party, comes the same way.

Plugins are the entry points of group ``berth``; the default set is declared
in berth's own pyproject.toml exactly as a third party declares its own.

Environment:
- ``BERTH_PLUGINS``: comma-separated entry point names; only these load
  (empty string: none). Unset: all installed plugins load.
- ``BERTH_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import pluggy

from berth.core import hookspecs
from berth.core.errors import BerthError, InvalidArgument, Unsupported

KINDS = ("storage", "network", "volume", "log", "registry")

_manager: pluggy.PluginManager | None = None


def manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading the plugins on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager("berth")
        pm.add_hookspecs(hookspecs)
        wanted = os.environ.get("BERTH_PLUGINS")
        only = None if wanted is None else {n.strip() for n in wanted.split(",") if n.strip()}
        for ep in _entry_points():
            if only is not None and ep.name not in only:
                continue
            if pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # re-raise with the plugin's name in it
                raise BerthError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            pm.register(plugin, name=ep.name)
        if os.environ.get("BERTH_TRACE_PLUGINS"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        _manager = pm
    return _manager


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
    """Entry points of group `berth`, cached on disk.

    Scanning every installed distribution costs ~20 ms a command; the cache
    is keyed by the modification times of the sys.path directories, which
    change whenever a distribution is installed or removed there. It lives
    in the caller's own ~/.cache (mode 0700): plugin names are code to run.
    """
    import json

    key = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    cache = os.path.join(os.path.expanduser("~"), ".cache", "berth", "entry-points.json")
    try:
        with open(cache) as f:
            data = json.load(f)
        if data["key"] == key:
            return [_EntryPoint(n, v) for n, v in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib.metadata import entry_points

    found = [(ep.name, ep.value) for ep in entry_points(group="berth")]
    try:
        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        tmp = f"{cache}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"key": key, "entry_points": found}, f)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home: just no cache
    return [_EntryPoint(n, v) for n, v in found]


def reset() -> None:
    """Forget the loaded plugins (tests register their own)."""
    global _manager
    _manager = None
    _registries.clear()


class DriverRegistry:
    """The drivers of one kind that the plugins registered, by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[Any, str]] = {}
        hook = getattr(manager().hook, _HOOKS[kind])
        for impl in hook.get_hookimpls():
            impl.function(register=self._registrar(impl.plugin_name))

    def _registrar(self, plugin_name: str):
        def register(name: str, driver: Any) -> None:
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
        _registries[kind] = DriverRegistry(kind)
    return _registries[kind]


def call(hook_name: str, **kwargs) -> list:
    """Call a lifecycle hook on every plugin."""
    return getattr(manager().hook, hook_name)(**kwargs)
