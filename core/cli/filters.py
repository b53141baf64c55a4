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


def prune_accepts(filters: dict[str, list[str]]):
    """The `prune --filter` test (Docker's keys: until, label, label!): a function of an
    object's creation time (RFC 3339) and labels."""
    from berth.core.plumbing.units import parse_since, parse_time

    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    try:
        untils = [parse_since(v) for v in filters.get("until", [])]
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None

    def accepts(created: str, labels: dict | None) -> bool:
        labels = labels or {}
        if untils and not all(parse_time(created).timestamp() < u for u in untils):
            return False
        if not all(label_match(labels, v) for v in filters.get("label", [])):
            return False
        return not any(label_match(labels, v) for v in filters.get("label!", []))

    return accepts
