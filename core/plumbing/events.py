"""The event bus: blinker signals in-process, a journal for other processes.

Every state change the engine makes is one event, shaped as Docker's
(``Type``, ``Action``, ``Actor {ID, Attributes}``, ``time``, ``timeNano``).
Subscribers in this process (metrics, logs, plugins) connect to
``signal(type)``; ``berth events`` in another process follows the journal,
a JSON-lines file appended with single O_APPEND writes, so concurrent
berth processes never interleave half lines.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from berth.core.errors import InvalidArgument

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any

TYPES = ("container", "image", "volume", "network", "plugin")
ROTATE_BYTES = 8 << 20  # the journal keeps its previous generation as .1

_signals: dict[str, Any] = {}


def signal(type_: str):
    """The blinker signal for events of one type (``"container"`` ...)."""
    if type_ not in _signals:
        import blinker

        _signals[type_] = blinker.signal(f"berth.{type_}")
    return _signals[type_]


def send(type_: str, sender: Any, event: dict) -> None:
    """Deliver `event` to this process's subscribers. Subscribing imports
    blinker (berth.core.plumbing.events.signal, or blinker.signal itself), so without
    it loaded nobody listens, and a command need not pay ~5 ms to import it."""
    if "blinker" in sys.modules:
        signal(type_).send(sender, event=event)


def make_event(type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> dict:
    now = time.time_ns()
    event = {
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
        "scope": "local",
        "time": now // 1_000_000_000,
        "timeNano": now,
    }
    if type_ in ("container", "image"):  # Docker's legacy fields
        event["status"] = action
        event["id"] = actor_id
        if "image" in event["Actor"]["Attributes"]:
            event["from"] = event["Actor"]["Attributes"]["image"]
    return event


class Journal:
    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, event: dict) -> None:
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size > ROTATE_BYTES:
                os.close(fd)
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(fd, line)
        finally:
            os.close(fd)

    def read(self, since_ns: int | None = None, until_ns: int | None = None, follow: bool = False,
             poll: float = 0.1, stop: Callable[[], bool] | None = None) -> Iterator[dict]:
        """Past events (both generations), then with `follow` new ones as they
        come, until `stop()` (when given) turns true."""
        start_ns = time.time_ns()
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            if since_ns is None and follow:
                break  # following without --since shows only new events
            for event in _read_lines(path):
                if since_ns is not None and event["timeNano"] < since_ns:
                    continue
                if until_ns is not None and event["timeNano"] > until_ns:
                    return
                yield event
        if not follow:
            return
        f, inode = _open_at_end(self.path, since_ns is None)
        buffer = b""
        while True:
            chunk = f.read() if f else b""
            if chunk:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    if since_ns is not None and event["timeNano"] < since_ns:
                        continue
                    if since_ns is None and event["timeNano"] < start_ns:
                        continue
                    if until_ns is not None and event["timeNano"] > until_ns:
                        return
                    yield event
                continue
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current != inode:  # rotated: drain the old file, then switch
                rest = f.read() if f else b""
                if rest:
                    buffer += rest
                    continue
                if f:
                    f.close()
                f, inode = _open_at_end(self.path, False)
                continue
            time.sleep(poll)


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """Whether `event` passes `events --filter` (Docker's keys; InvalidArgument for another)."""
    attrs = event["Actor"].get("Attributes") or {}
    for key, values in filters.items():
        if key == "type":
            ok = event["Type"] in values
        elif key == "event":
            action = event["Action"]
            ok = action in values or action.split(":", 1)[0] in values
        elif key in ("container", "image", "volume", "network"):
            ok = event["Type"] == key and any(
                v in (event["Actor"]["ID"], attrs.get("name")) or event["Actor"]["ID"].startswith(v)
                or (key == "image" and v in (attrs.get("image"),)) for v in values)
            if key == "image" and not ok:  # Docker: container events of containers from that image too
                ok = attrs.get("image") in values
        elif key == "label":
            ok = all(label_match(attrs, v) for v in values)
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


def label_match(labels: dict, wanted: str) -> bool:
    """`label=KEY` or `label=KEY=VALUE`."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def check_filters(filters: dict[str, list[str]]) -> None:
    """InvalidArgument for a filter key `matches` does not know, before any event is read."""
    for key in filters:
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")


FILTER_KEYS = ("type", "event", "container", "image", "volume", "network", "label")


def _read_lines(path: Path) -> Iterator[dict]:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.endswith(b"\n"):
                    yield json.loads(line)
    except FileNotFoundError:
        return


def _open_at_end(path: Path, at_end: bool):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None, None
    if at_end:
        f.seek(0, os.SEEK_END)
    return f, os.fstat(f.fileno()).st_ino
