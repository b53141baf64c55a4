"""The Dockerfile instructions `import -c` and `commit -c` accept.

CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL,
ONBUILD applied to an image config's ``config`` object, as Docker does.
"""

from __future__ import annotations

import copy
import json
import shlex
from typing import Iterable

from berth.core.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL", "ONBUILD")


def _exec_form(rest: str) -> list[str]:
    """JSON array form, else shell form wrapped in /bin/sh -c."""
    rest = rest.strip()
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` or the legacy `K V` form."""
    words = shlex.split(rest)
    if not words:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{what} names can not be blank")
        out.append((key, value))
    return out


def apply_changes(config: dict, changes: Iterable[str]) -> dict:
    """Return a copy of `config` (an image's ``config`` object) with the changes applied."""
    cfg = copy.deepcopy(config)
    for change in changes:
        instruction, _, rest = change.strip().partition(" ")
        instruction = instruction.upper()
        if instruction not in ALLOWED:
            raise InvalidArgument(f"{instruction} is not a valid change command")
        if "\x00" in rest:
            raise InvalidArgument(f"{instruction}: NUL bytes are not allowed")
        if instruction == "CMD":
            cfg["Cmd"] = _exec_form(rest)
        elif instruction == "ENTRYPOINT":
            cfg["Entrypoint"] = _exec_form(rest)
        elif instruction == "ENV":
            env = [e for e in cfg.get("Env") or []]
            for key, value in _pairs(rest, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif instruction == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                port, _, proto = p.partition("/")
                if not port.isdigit():
                    raise InvalidArgument(f"invalid containerPort: {port}")
                ports[f"{port}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            paths = _exec_form(rest) if rest.strip().startswith("[") else rest.split()
            for v in paths:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instruction == "USER":
            cfg["User"] = rest.strip()
        elif instruction == "WORKDIR":
            cfg["WorkingDir"] = rest.strip()
        elif instruction == "STOPSIGNAL":
            cfg["StopSignal"] = rest.strip()
        elif instruction == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
    return cfg
