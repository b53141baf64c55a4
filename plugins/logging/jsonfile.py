"""Docker's json-file log driver: one JSON object per line, with rotation.

Layout (Docker's): ``<log_dir>/<container_id>-json.log`` is the live file,
``...-json.log.1`` the newest rotated one, ``.2`` older, up to
``max-file - 1`` rotated files. A line::

    {"log":"hello\\n","stream":"stdout","time":"2026-11-29T06:51:07.123456Z"}

The time is Go's RFC3339Nano in UTC, as Docker writes it (trailing zeros of
the fraction trimmed; berth's clock has microseconds).

Writing, rotation and reading (tail, since/until, follow across rotations)
are berth.core.logfiles' RotatingLogDriver; this module says how a line
looks. Crash safety: a torn last line (crash mid-write) is skipped by
readers, and a writer that reopens such a file ends it first with a newline.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from berth.core.drivers import LogEntry
from berth.core.logfiles import RotatingLogDriver, parse_max_size  # noqa: F401 - parse_max_size: public
from berth.plugins.logging import jsonline

# -- the line format ---------------------------------------------------------------

def format_time(t: datetime) -> str:
    """Go's time.RFC3339Nano of `t` in UTC: fraction without trailing zeros."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    t = t.astimezone(timezone.utc)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def encode_entry(entry: LogEntry) -> bytes:
    """One json-file line, newline included."""
    return jsonline.record(entry.stream, entry.line, format_time(entry.time))


_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def parse_time(text: str) -> datetime:
    """RFC 3339 with any fraction length (nanoseconds truncated to micro)."""
    m = _TIME_RE.fullmatch(text)
    if not m:
        raise ValueError(text)
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    t = datetime(*(int(m.group(i)) for i in range(1, 7)), micro, tzinfo=timezone.utc)
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        from datetime import timedelta

        t -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return t


def decode_line(raw: bytes) -> LogEntry | None:
    """A LogEntry from one complete json-file line, None if it is not one."""
    try:
        obj = json.loads(raw)
        return LogEntry(obj.get("stream", "stdout"), obj["log"].encode("utf-8", "surrogatepass"),
                        parse_time(obj["time"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# -- the driver --------------------------------------------------------------------


class JsonFileLogDriver(RotatingLogDriver):
    """Docker's json-file driver (options max-size, max-file; compress=false)."""

    name = "json-file"
    FILE_NAME = "{id}-json.log"
    KNOWN_OPTIONS = frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                               "tag"})

    LINE_ENCODER = "berth.plugins.logging.jsonline:encode_line"

    def encode(self, entry: LogEntry) -> bytes:
        return encode_entry(entry)

    def decode(self, record: bytes) -> LogEntry | None:
        return decode_line(record)
