"""Docker's ``local`` log driver: compact binary records in rotated files.

The file is ``container.log`` in the container's log directory, rotated to
``container.log.1`` ... (max-size 20 MiB and max-file 5 by default, as
Docker's). A record is Docker's: the protobuf ``LogEntry`` of moby's
api/types/plugins/logdriver/entry.proto (source = 1, time_nano = 2, line = 3,
partial = 4), framed by its length as a big-endian uint32 before and after,
so the file can be read backwards (``--tail``). The line is stored without
its newline; ``partial`` marks a line that had none.

The protobuf is written and read by hand: four scalar fields are a few lines
of varints, where a protobuf library would add a dependency and a generated
module to every container's monitor. Rotation, ``--since``/``--until``,
``--tail`` and following across rotations are berth.core.logfiles'.

``compress`` (gzip of rotated files, Docker's default) is not supported:
rotated files stay plain, and ``compress=true`` is refused.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from berth.core.drivers import LogEntry
from berth.core.logfiles import RotatingLogDriver

_LEN = struct.Struct(">I")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class LocalLogDriver(RotatingLogDriver):
    """Docker's local driver: protobuf records, length-framed, rotated (max-size, max-file)."""

    name = "local"
    FILE_NAME = "container.log"
    DEFAULT_MAX_SIZE = str(20 * 1024 * 1024)
    DEFAULT_MAX_FILE = "5"

    def encode(self, entry: LogEntry) -> bytes:
        body = encode_proto(entry)
        return _LEN.pack(len(body)) + body + _LEN.pack(len(body))

    def decode(self, record: bytes) -> LogEntry | None:
        return decode_proto(record)

    # -- framing: [length][record][length] -------------------------------------------

    def split(self, data: bytes) -> tuple[list[bytes], bytes]:
        records, pos = [], 0
        while len(data) - pos >= 8:
            (n,) = _LEN.unpack_from(data, pos)
            if len(data) - pos < 8 + n:
                break
            if _LEN.unpack_from(data, pos + 4 + n)[0] != n:
                return records, b""  # not a record: nothing after it can be framed
            records.append(data[pos + 4:pos + 4 + n])
            pos += 8 + n
        return records, data[pos:]

    def complete_end(self, fd: int) -> int:
        size = os.fstat(fd).st_size
        if size >= 8:  # the usual case: the last record is whole, found from its trailing length
            (n,) = _LEN.unpack(os.pread(fd, 4, size - 4))
            if size - 8 - n >= 0 and _LEN.unpack(os.pread(fd, 4, size - 8 - n))[0] == n:
                return size
        end = 0  # torn: walk forward from the start
        while True:
            head = os.pread(fd, 4, end)
            if len(head) < 4:
                return end
            (n,) = _LEN.unpack(head)
            tail = os.pread(fd, 4, end + 4 + n)
            if len(tail) < 4 or _LEN.unpack(tail)[0] != n:
                return end
            end += 8 + n

    def reverse_records(self, fd: int, end: int) -> Iterator[bytes]:
        pos = end
        while pos >= 8:
            (n,) = _LEN.unpack(os.pread(fd, 4, pos - 4))
            start = pos - 8 - n
            if start < 0:
                return
            yield os.pread(fd, n, start + 4)
            pos = start

    def seal(self, fd: int, size: int, complete: int) -> int:
        """A torn record cannot be skipped by its framing: cut it off."""
        os.ftruncate(fd, complete)
        return complete


# -- the protobuf LogEntry ----------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_proto(entry: LogEntry) -> bytes:
    """Docker's LogEntry message of `entry` (fields in order, zero values left out, as Go's)."""
    line, partial = entry.line, not entry.line.endswith(b"\n")
    if not partial:
        line = line[:-1]
    t = entry.time if entry.time.tzinfo else entry.time.replace(tzinfo=timezone.utc)
    delta = t - _EPOCH
    nanos = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    out = bytearray()
    source = entry.stream.encode()
    if source:
        out += b"\x0a" + _varint(len(source)) + source
    if nanos:
        out += b"\x10" + _varint(nanos & 0xFFFFFFFFFFFFFFFF)
    if line:
        out += b"\x1a" + _varint(len(line)) + line
    if partial:
        out += b"\x20\x01"
    return bytes(out)


def decode_proto(data: bytes) -> LogEntry | None:
    """The LogEntry of one record; None if it is not a LogEntry message."""
    fields: dict[int, int | bytes] = {}
    pos = 0
    try:
        while pos < len(data):
            key, pos = _read_varint(data, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                fields[number], pos = _read_varint(data, pos)
            elif wire == 2:
                n, pos = _read_varint(data, pos)
                if pos + n > len(data):
                    return None
                fields[number], pos = data[pos:pos + n], pos + n
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                return None
    except IndexError:
        return None
    nanos = fields.get(2, 0)
    line = fields.get(3, b"")
    if not isinstance(nanos, int) or not isinstance(line, bytes):
        return None
    if not fields.get(4):
        line += b"\n"
    try:
        stream = bytes(fields.get(1, b"")).decode() or "stdout"
    except UnicodeDecodeError:
        return None
    time = _EPOCH + timedelta(microseconds=nanos // 1000)
    return LogEntry(stream, line, time)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
