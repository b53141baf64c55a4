"""`--filter key=value` as every listing command takes it, with Docker's errors."""

from __future__ import annotations

from collections.abc import Iterable

from berth.core.errors import InvalidArgument


def parse(values: Iterable[str], allowed: Iterable[str] | None = None) -> dict[str, list[str]]:
    """{"key": [values...]}; refuse a value without "=" or, given `allowed`, an unknown key."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument("bad format of filter (expected name=value)")
        if allowed is not None and key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    return out


def label_match(labels: dict, wanted: str) -> bool:
    """`label=KEY` or `label=KEY=VALUE`."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
