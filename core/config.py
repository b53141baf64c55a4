"""Layered TOML configuration.

Built-in defaults < /etc/berth/berth.toml < $BERTH_CONFIG < command-line
flags. The built-in defaults are config/berth.toml's values, repeated here so
that an installed berth needs no data file; tests/unit/test_config.py keeps
the two equal.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from berth.core.errors import InvalidArgument
from berth.core.plumbing import cache

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any

SYSTEM_CONFIG = Path("/etc/berth/berth.toml")

DEFAULTS: dict[str, Any] = {
    "engine": {
        "root": "/var/lib/berth",
        "runroot": "/run/berth",
        "log_level": "warning",
        "log_format": "console",
    },
    "storage": {"driver": "overlay2", "options": {}},
    "network": {
        "default": "bridge",
        "bridge": "berth0",
        "subnet": "10.213.0.0/16",
        "gateway": "10.213.0.1",
        "port_range": "49000-49900",
    },
    "logging": {"driver": "json-file", "options": {}},
    "volumes": {"driver": "local"},
    "registries": {"default": "docker.io", "insecure": ["127.0.0.0/8"], "mirrors": {},
                   "idle_timeout": 30, "request_timeout": 600},
    "metrics": {"address": "127.0.0.1:9323"},
    "monitor": {"steady_probe_gap": 10},
}


def _merge(base: dict, over: dict, where: str) -> None:
    for key, value in over.items():
        if key not in base:
            raise InvalidArgument(f"{where}: unknown configuration key {key!r}")
        if isinstance(base[key], dict) and base[key] and not isinstance(value, dict):
            raise InvalidArgument(f"{where}: {key!r} must be a table")
        if isinstance(base[key], dict) and isinstance(value, dict) and base[key]:
            _merge(base[key], value, where)
        else:
            base[key] = copy.deepcopy(value)


def _read(path: Path) -> dict:
    """A configuration file's tables. tomllib costs a command ~5 ms to
    import, so each version of a file is parsed once and its tables kept
    in a record (berth.core.plumbing.cache) while its inode, size and times stay."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from None
    stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    record = cache.load(_RECORD)
    known = record.get(str(path))
    if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("tables"), dict):
        return known["tables"]
    import tomllib

    try:
        with open(path, "rb") as f:
            tables = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from None
    record.pop(str(path), None)
    record[str(path)] = {"stamp": stamp, "tables": tables}
    cache.save(_RECORD, dict(list(record.items())[-_RECORD_FILES:]))  # the files used last
    return tables


_RECORD = "config.json"
_RECORD_FILES = 16


class Config:
    """The merged configuration; `config["storage"]["driver"]` or `config.get("storage.driver")`."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    # Absolute: the monitor works from "/", and a relative --root means the caller's directory.
    @property
    def root(self) -> Path:
        return Path(os.path.abspath(self.data["engine"]["root"]))

    @property
    def runroot(self) -> Path:
        return Path(os.path.abspath(self.data["engine"]["runroot"]))


def load(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Config:
    """Merge the layers; `overrides` are the command-line flags (nested dict)."""
    env = os.environ if env is None else env
    data = copy.deepcopy(DEFAULTS)
    layers: list[tuple[str, dict]] = []
    if SYSTEM_CONFIG.exists():
        layers.append((str(SYSTEM_CONFIG), _read(SYSTEM_CONFIG)))
    if env.get("BERTH_CONFIG"):
        path = Path(os.path.abspath(env["BERTH_CONFIG"]))
        if not path.exists():
            raise InvalidArgument(f"BERTH_CONFIG: {path}: no such file")
        layers.append((str(path), _read(path)))
    if overrides:
        layers.append(("command line", overrides))
    for where, layer in layers:
        _merge(data, layer, where)
    return Config(data)
