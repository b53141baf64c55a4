"""Rotating log files: the machinery of a log driver that keeps a container's
output in files of its own, as Docker's json-file and local drivers do.

``RotatingLogDriver`` writes records (one ``os.write`` each, on an O_APPEND
descriptor) to ``<log_dir>/<FILE_NAME>``, rotating at ``max-size`` into
``.1`` (the newest rotated file), ``.2`` ... up to ``max-file - 1`` rotated
files, and reads them back as ``LogDriver.read`` promises: since/until,
tail (reading backwards), and follow across rotations by any process, none
lost, none repeated. A subclass says how one record looks:

- ``encode(entry) -> bytes`` and ``decode(record) -> LogEntry | None``;
- its framing, newline-separated by default (json-file): ``split`` (complete
  records of a buffer, and the rest), ``complete_end`` (the offset after the
  file's last complete record) and ``reverse_records`` (records, last first);
- ``seal`` (what to do to a torn last record, left by a crash or a full
  disk, before writing after it).

Following: the reader keeps its descriptor on the file it reads; when the
live name points to another file, it drains its file and moves to the file
that came right after it, found by inode among the rotated names. With
max-file=1 rotation unlinks and recreates (rather than truncating, as Docker
does) so a follower still drains the old file: nothing lost.
"""

from __future__ import annotations

import errno
import os
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

from berth.core.drivers import LogDriver, LogEntry
from berth.core.errors import InvalidArgument
from berth.core.logwriter import RotatingWriter, seal_line

_SI = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
READ_CHUNK = 1 << 16
IDLE_POLL_MAX = 0.05  # a follower looks for new records at least this often (seconds)


def parse_max_size(text: str) -> int:
    """Docker's max-size (units.FromHumanSize, decimal: 10k = 10000); -1 = unlimited."""
    if str(text).strip() == "-1":
        return -1
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[bB]?\s*", str(text))
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    size = int(float(m.group(1)) * _SI[m.group(2).lower()])
    if size <= 0:
        raise InvalidArgument("max-size must be a positive number")
    return size


def parse_max_file(text: str) -> int:
    try:
        count = int(str(text).strip(), 10)
    except ValueError:
        raise InvalidArgument(f"invalid max-file '{text}': must be a positive integer") from None
    if count < 1:
        raise InvalidArgument("max-file cannot be less than 1")
    return count


def parse_bool(text: str) -> bool:
    # Go's strconv.ParseBool
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidArgument(f'strconv.ParseBool: parsing "{text}": invalid syntax')



class RotatingLogDriver(LogDriver):
    """A log driver on rotating files (see the module's doc). Subclasses set
    ``FILE_NAME`` (``{id}`` is the container's ID), the defaults of
    ``max-size`` and ``max-file``, the options it takes (``KNOWN_OPTIONS``),
    and write ``encode`` and ``decode``."""

    readable = True
    FILE_NAME = "{id}.log"
    DEFAULT_MAX_SIZE = "-1"
    DEFAULT_MAX_FILE = "1"
    KNOWN_OPTIONS = frozenset({"max-size", "max-file", "compress"})
    # "module:function" of a stdlib-only module, function(stream, line, time_ns) -> one record;
    # it lets a container's monitor write this driver's records without the driver (handoff)
    LINE_ENCODER: str | None = None

    @abstractmethod
    def encode(self, entry: LogEntry) -> bytes:
        """One record, framing included."""

    @abstractmethod
    def decode(self, record: bytes) -> LogEntry | None:
        """The entry of one complete record (as `split`/`reverse_records` cut it), None if it is not one."""

    # -- framing: newline-separated records unless a subclass says otherwise ------

    def split(self, data: bytes) -> tuple[list[bytes], bytes]:
        """The complete records at the start of `data`, and the rest (a record still being written)."""
        records = data.split(b"\n")
        rest = records.pop()
        return records, rest

    def complete_end(self, fd: int) -> int:
        """The offset just after the file's last complete record."""
        return _last_newline_end(fd)

    def reverse_records(self, fd: int, end: int) -> Iterator[bytes]:
        """The records of fd[0:end], last first."""
        return _reverse_lines(fd, end)

    def seal(self, fd: int, size: int, complete: int) -> int:
        """The file behind `fd` (O_APPEND) is `size` bytes and its complete records end at `complete`:
        make what is written next parse; the new size. Default: end the torn line with a newline,
        which readers skip as a record that does not decode."""
        return seal_line(fd, size, complete)

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """Docker's checks: an option outside KNOWN_OPTIONS, a bad max-size or max-file; and
        compress=true, which berth does not do (rotated files stay plain)."""
        for key in options:
            if key not in cls.KNOWN_OPTIONS:
                raise InvalidArgument(f"unknown log opt '{key}' for {cls.name} log driver")
        # max-file > 1 without max-size: Docker accepts it and never rotates; so do we
        parse_max_size(options.get("max-size", cls.DEFAULT_MAX_SIZE))
        parse_max_file(options.get("max-file", cls.DEFAULT_MAX_FILE))
        if "compress" in options and parse_bool(options["compress"]):
            raise InvalidArgument(f"{cls.name} log driver: compress is not supported by berth")

    def __init__(self, container_id: str, log_dir: Path, options: Mapping[str, str] | None = None):
        super().__init__(container_id, log_dir, options)
        self.validate_options(self.options)
        self.max_size = parse_max_size(self.options.get("max-size", self.DEFAULT_MAX_SIZE))
        self.max_file = parse_max_file(self.options.get("max-file", self.DEFAULT_MAX_FILE))
        self.path = self.log_dir / self.FILE_NAME.format(id=container_id)
        self._writer: RotatingWriter | None = None

    # -- writing ---------------------------------------------------------------

    def _open(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for extra in self._names()[:-1]:  # rotated files beyond max-file (it was lowered)
            if int(extra.rsplit(".", 1)[1]) >= self.max_file:
                Path(extra).unlink(missing_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        size = os.fstat(fd).st_size
        if size:  # a crash may have left a torn last record: seal it so ours parse
            with open(self.path, "rb") as f:
                complete = self.complete_end(f.fileno())
            if complete != size:
                size = self.seal(fd, size, complete)
        self._writer = RotatingWriter(str(self.path), self.max_size, self.max_file, fd, size, self.seal)

    def write(self, entry: LogEntry) -> None:
        if self._writer is None or self._writer.fd is None:  # (closed by a failed write: reopen and seal)
            self._open()
        self._writer.write(self.encode(entry))

    def handoff(self) -> dict | None:
        """The monitor's light steady state writes on through berth.core.logwriter with
        ``LINE_ENCODER`` (see LogDriver.handoff); None without one."""
        if self.LINE_ENCODER is None:
            return None
        if self._writer is None:
            self._open()
        module, _, function = self.LINE_ENCODER.partition(":")
        w = self._writer
        return {"writer": _module_file("berth.core.logwriter"), "encoder": [_module_file(module), function],
                "path": w.path, "max_size": w.max_size, "max_file": w.max_file, "fd": w.fd, "size": w.size}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- reading ---------------------------------------------------------------

    def _names(self) -> list[str]:
        """Paths of the log files, oldest first, the live one last."""
        rotated = []
        prefix = self.path.name + "."
        try:
            for name in os.listdir(self.log_dir):
                if name.startswith(prefix) and name[len(prefix):].isdigit():
                    rotated.append(int(name[len(prefix):]))
        except FileNotFoundError:
            return []
        return [f"{self.path}.{n}" for n in sorted(rotated, reverse=True)] + [str(self.path)]

    def _scan(self) -> list[tuple[str, int]]:
        out = []
        for p in self._names():
            try:
                out.append((p, os.stat(p).st_ino))
            except FileNotFoundError:
                pass
        return out

    def _chain(self) -> list[tuple[str, int]]:
        """(path, inode) of the existing log files, oldest first.

        Two equal scans in a row: a scan that raced a rotation sees a mix of
        before and after, which the next scan cannot repeat.
        """
        last = self._scan()
        for _ in range(100):
            again = self._scan()
            if again == last:
                return again
            last = again
            time.sleep(0.001)
        return last

    def _open_snapshot(self) -> list[tuple[int, int]]:
        """Open every log file as one consistent set: [(fd, inode)], oldest first."""
        for _ in range(50):
            fds = []
            try:
                for p in reversed(self._names()):  # newest first: a rotation meanwhile repeats, never skips
                    try:
                        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue
                    fds.append((fd, os.fstat(fd).st_ino))
                fds.reverse()
                if [ino for _, ino in fds] == [ino for _, ino in self._chain()]:
                    return fds
            except BaseException:
                for fd, _ in fds:
                    os.close(fd)
                raise
            for fd, _ in fds:
                os.close(fd)
            time.sleep(0.005)  # rotated while we looked: look again
        raise OSError(errno.EAGAIN, f"{self.path}: log files keep rotating")

    def read(
        self,
        *,
        follow: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        tail: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[LogEntry]:
        """See LogDriver.read; since/until are applied before tail."""
        since, until = _aware(since), _aware(until)

        def wanted(e: LogEntry) -> bool:
            return since is None or e.time >= since

        files = self._open_snapshot()
        try:
            live = None
            ends = [self.complete_end(fd) for fd, _ in files]
            if files:  # following resumes right after the last complete line
                live = _RecordReader(self, files[-1][0])
                os.lseek(live.fd, ends[-1], os.SEEK_SET)
            if tail is not None and tail >= 0:
                entries, past_until = _tail(self, [fd for fd, _ in files], ends, tail, since, until)
                yield from entries
            else:
                past_until = False
                for fd, _ in files:
                    reader = live if fd == live.fd else _RecordReader(self, fd)
                    if reader is live:
                        os.lseek(fd, 0, os.SEEK_SET)
                    for e in reader.entries():
                        if until is not None and e.time > until:
                            past_until = True
                            break
                        if wanted(e):
                            yield e
                    if past_until:
                        break
            if follow and not past_until:
                yield from self._follow(live, wanted, until, stop)
        finally:
            for fd, _ in files:
                os.close(fd)

    def _follow(self, current, wanted, until, stop) -> Iterator[LogEntry]:
        """Yield what is written after `current` (a reader of the live file at
        the start, or None when there was none) until stop or until."""
        stopping = False
        idle = 0.01
        nxt = None
        try:
            while True:
                progressed = False
                if current is not None:
                    for e in current.entries():
                        progressed = True
                        if until is not None and e.time > until:
                            return
                        if wanted(e):
                            yield e
                nxt = self._successor(current)
                if nxt is not None:
                    if current is not None:
                        # lines written between our last read and the rotation
                        for e in current.entries():
                            if until is not None and e.time > until:
                                return
                            if wanted(e):
                                yield e
                        current.close()
                    current = nxt
                    progressed = True
                if progressed:
                    idle = 0.01
                    continue
                if stopping:
                    return
                if (stop is not None and stop()) or (until is not None and datetime.now(timezone.utc) > until):
                    stopping = True  # one more pass drains what was written before stop
                    continue
                time.sleep(idle)
                idle = min(idle * 2, IDLE_POLL_MAX)
        finally:
            for reader in (current, nxt):
                if reader is not None:
                    reader.close()

    def _successor(self, current) -> "_RecordReader | None":
        """The file to read after `current` when it was rotated away, else None."""
        chain = self._chain()
        if not chain:
            return None
        if current is not None:
            inodes = [ino for _, ino in chain]
            if chain[-1][0] == str(self.path) and chain[-1][1] == current.ino:
                return None  # still the live file
            if current.ino in inodes:
                i = inodes.index(current.ino)
                if i == len(chain) - 1:
                    return None  # rotated, the new live file is not made yet
                path, ino = chain[i + 1]
            elif os.fstat(current.fd).st_nlink:
                return None  # it has a name we did not see: mid-rotation, look again
            else:
                # deleted: max-file=1 replaced it, or it fell off the end while we
                # lagged max-file rotations behind (those lines are lost, as in Docker)
                path, ino = chain[0]
        else:
            path, ino = chain[0]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        if os.fstat(fd).st_ino != ino:
            os.close(fd)
            return None  # rotated meanwhile; the next pass looks again
        reader = _RecordReader(self, fd)
        reader.owned = True
        return reader


class _RecordReader:
    """Complete records from a descriptor, keeping a torn tail for later."""

    def __init__(self, driver: RotatingLogDriver, fd: int):
        self.driver = driver
        self.fd = fd
        self.ino = os.fstat(fd).st_ino
        self.pending = b""
        self.owned = False  # whether close() closes fd (snapshot fds are closed by read)

    def entries(self) -> Iterator[LogEntry]:
        while True:
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                return
            records, self.pending = self.driver.split(self.pending + chunk)
            for raw in records:
                entry = self.driver.decode(raw)
                if entry is not None:
                    yield entry

    def close(self) -> None:
        if self.owned:
            os.close(self.fd)
            self.owned = False


def _last_newline_end(fd: int) -> int:
    """The offset just after the file's last newline (a torn line is not counted)."""
    pos = os.fstat(fd).st_size
    while pos > 0:
        n = min(READ_CHUNK, pos)
        block = os.pread(fd, n, pos - n)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return pos - n + cut + 1
        pos -= n
    return 0


def _reverse_lines(fd: int, end: int) -> Iterator[bytes]:
    """The lines of fd[0:end], last first, read backwards in blocks."""
    pos, head = end, b""
    while pos > 0:
        n = min(READ_CHUNK, pos)
        pos -= n
        lines = (os.pread(fd, n, pos) + head).split(b"\n")
        head = lines[0]  # maybe the end of a line that starts in an earlier block
        yield from reversed(lines[1:])
    if head:
        yield head


def _tail(driver: RotatingLogDriver, fds: list[int], ends: list[int], tail: int, since,
          until) -> tuple[list[LogEntry], bool]:
    """The last `tail` entries of fds[i][0:ends[i]] within since/until, reading
    backwards, and whether an entry later than `until` exists."""
    found: list[LogEntry] = []
    past_until = False
    for fd, end in reversed(list(zip(fds, ends))):
        if len(found) >= tail:
            break
        for raw in driver.reverse_records(fd, end):
            entry = driver.decode(raw)
            if entry is None:
                continue
            if until is not None and entry.time > until:
                past_until = True
                continue
            if since is not None and entry.time < since:
                return found[::-1], past_until  # older ones are older still
            found.append(entry)
            if len(found) >= tail:
                break
    return found[::-1], past_until


def _aware(t: datetime | None) -> datetime | None:
    if t is not None and t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t


def _module_file(name: str) -> str:
    import importlib

    return importlib.import_module(name).__file__
