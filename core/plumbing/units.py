"""Docker's human units: sizes ("4.26MB", "10m") and durations ("2 hours ago")."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from berth.core.errors import InvalidArgument

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB"]
_BINARY = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def human_size(size: float) -> str:
    """As docker images prints SIZE: decimal units, 3 significant digits."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{_DECIMAL[i]}"


_INT64_MAX = (1 << 63) - 1


def ram_in_bytes(text: str) -> int:
    """Parse "64m", "1g", "512k", "100" (binary units) as Docker's RAMInBytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?\s*", str(text))
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    whole, _, fraction = m.group(1).partition(".")
    unit = _BINARY[m.group(2).lower()]
    value = int(whole) * unit + (int(fraction) * unit // 10 ** len(fraction) if fraction else 0)
    if value > _INT64_MAX:  # Docker's sizes are int64
        raise InvalidArgument(f"invalid size: '{text}': value out of range")
    return value


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = round(s / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def now_iso() -> str:
    """UTC now in RFC 3339 with nanosecond precision, as Docker writes times."""
    import time

    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


def parse_time(text: str) -> datetime:
    """Parse RFC 3339 (any fraction length) into an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", text)
    if not m:
        raise InvalidArgument(f"invalid time {text!r}")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = m.group(3) or "Z"
    return datetime.fromisoformat(f"{m.group(1)}.{frac}{'+00:00' if tz == 'Z' else tz}")


def go_time(iso: str) -> str:
    """A stored RFC 3339 time as Docker's CreatedAt prints it (Go's time.String, local zone):
    "2026-12-03 11:07:30 +0000 UTC"."""
    return parse_time(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def ago(iso: str) -> str:
    """"2 hours ago" for a stored RFC 3339 time."""
    delta = datetime.now(timezone.utc) - parse_time(iso)
    return human_duration(delta.total_seconds()) + " ago"


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
                   "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms", "-2s", "0"), in nanoseconds; ValueError
    with Go's message (time: invalid duration "x")."""
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    if body == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_since(text: str, now: float | None = None) -> float:
    """--since/--until values: a Unix timestamp, RFC 3339, or a Go duration ("10m", "1h30m") before now."""
    import time

    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        return now - parse_duration(text) / 1e9
    except ValueError:
        pass
    try:
        return parse_time(text).timestamp()
    except InvalidArgument:
        raise InvalidArgument(f'invalid value for "since": failed to parse value as time or duration: "{text}"') from None
