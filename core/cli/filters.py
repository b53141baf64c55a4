"""`--filter key=value` as every listing command takes it, with Docker's errors."""

from __future__ import annotations

from collections.abc import Iterable

from berth.core.errors import InvalidArgument
from berth.core.plumbing.events import label_match  # noqa: F401 (one definition, shared with the API)


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
