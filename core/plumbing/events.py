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
        new_only = since_ns is None and follow  # following without --since shows only new events
        tail = JournalTail(self.path, at_end=new_only)
        lines = ([] if new_only else JournalTail(self.previous).lines()) + tail.lines()
        while True:
            for line in lines:
                event = json.loads(line)
                if event["timeNano"] < (start_ns if new_only else since_ns or 0):
                    continue
                if until_ns is not None and event["timeNano"] > until_ns:
                    return
                yield event
            if not follow:
                return
            lines = tail.lines()
            if lines:
                continue
            if until_ns is not None and time.time_ns() > until_ns:
                return
            if stop is not None and stop():
                return
            time.sleep(poll)

    @property
    def previous(self) -> Path:
        """The generation before the current one."""
        return self.path.with_name(self.path.name + ".1")


class JournalTail:
    """A journal's complete lines as they are appended, across rotations: when the file at
    the journal's path is a new one, what was left unread of the old one (now the previous
    generation) comes first. `berth events` follows with it, metrics count with it."""

    def __init__(self, path: Path, at_end: bool = False):
        self.path = Path(path)
        self.inode: int | None = None
        self.offset = 0
        if at_end:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return
            self.inode, self.offset = st.st_ino, st.st_size

    def lines(self) -> list[bytes]:
        """The complete lines appended since the last call."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return []
        out: list[bytes] = []
        if inode != self.inode:
            if self.inode is not None:  # rotated: finish the old file, if it is still the previous one
                out += self._read(self.path.with_name(self.path.name + ".1"))
            self.inode, self.offset = inode, 0
        return out + self._read(self.path)

    def _read(self, path: Path) -> list[bytes]:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return []
        with f:
            if os.fstat(f.fileno()).st_ino != self.inode:
                return []  # rotated again meanwhile: the next call sees the new file
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return complete.splitlines()


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
