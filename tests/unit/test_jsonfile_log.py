"""json-file's line format and option parsing, byte for byte against Docker."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from berth.core.drivers import LogEntry
from berth.core.errors import InvalidArgument
from berth.plugins.logging.jsonfile import decode_line, encode_entry, format_time, parse_max_size

T = datetime(2026, 11, 29, 6, 51, 7, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("line,escaped", [
    (b"hello\n", b'hello\\n'),
    (b'say "hi"\\\r\n', b'say \\"hi\\"\\\\\\r\\n'),
    (b"\t\x00\x1b", b"\\u0009\\u0000\\u001b"),  # Docker's writer: only \n and \r short
    (b"<b>&amp;</b>", b"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e"),
    ("gr\u00fc\u00df \u2603".encode(), "gr\u00fc\u00df \u2603".encode()),  # UTF-8 stays raw
    ("a\u2028b\u2029".encode(), b"a\\u2028b\\u2029"),
    (b"\xff\xfe", b"\\ufffd\\ufffd"),  # invalid UTF-8
])
def test_docker_escaping(line, escaped):
    out = encode_entry(LogEntry("stderr", line, T))
    assert out == b'{"log":"' + escaped + b'","stream":"stderr","time":"2026-11-29T06:51:07.123456Z"}\n'
    assert json.loads(out)["log"] == line.decode("utf-8", "replace")


@pytest.mark.parametrize("micro,text", [
    (123456, "2026-11-29T06:51:07.123456Z"),
    (120000, "2026-11-29T06:51:07.12Z"),  # Go's RFC3339Nano trims trailing zeros
    (0, "2026-11-29T06:51:07Z"),
])
def test_time_is_gos_rfc3339nano_in_utc(micro, text):
    assert format_time(T.replace(microsecond=micro)) == text


def test_non_utc_times_are_written_in_utc():
    from datetime import timedelta

    local = T.astimezone(timezone(timedelta(hours=2)))
    assert format_time(local) == "2026-11-29T06:51:07.123456Z"


def test_reads_lines_docker_wrote():
    raw = b'{"log":"hello\\n","stream":"stdout","time":"2026-11-29T06:51:07.123456789Z"}'
    assert decode_line(raw) == LogEntry("stdout", b"hello\n", T)
    assert decode_line(b'{"log":"x","stream":"stderr","time":"2026-11-29T08:51:07.1+02:00"}') == \
        LogEntry("stderr", b"x", T.replace(microsecond=100000))
    assert decode_line(b'{"log":"half') is None
    assert decode_line(b"") is None


@pytest.mark.parametrize("text,size", [
    ("10k", 10_000), ("10m", 10_000_000), ("1g", 1_000_000_000), ("100", 100), ("1.5k", 1500),
    ("10kb", 10_000), ("10MB", 10_000_000), ("-1", -1),
])
def test_max_size_in_dockers_decimal_units(text, size):
    assert parse_max_size(text) == size


@pytest.mark.parametrize("text", ["abc", "10x", "", "-5"])
def test_bad_max_size(text):
    with pytest.raises(InvalidArgument):
        parse_max_size(text)
