"""json-file beyond the kit's logging suite: rotation bounds the disk, tail/since/until across the
rotated files, and a follower survives rotations done by another process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from berth.core import plugins
from berth.core.drivers import LogEntry
from berth.core.errors import InvalidArgument

CID = "bt" + "1" * 62
T0 = datetime(2026, 11, 29, 6, 51, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def jsonfile():
    return plugins.drivers("log").get("json-file")


@pytest.fixture
def log_dir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    return d


def _numbered(n, start=0):
    return [LogEntry("stdout" if i % 3 else "stderr", b"line %06d\n" % i, T0 + timedelta(milliseconds=i))
            for i in range(start, start + n)]


def _files(log_dir):
    return sorted(p for p in log_dir.iterdir() if p.name.startswith(f"{CID}-json.log"))


def test_file_name_and_line_format(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {})
    w.write(LogEntry("stdout", b"hello\n", datetime(2026, 11, 29, 6, 51, 7, 123456, tzinfo=timezone.utc)))
    w.close()
    assert (log_dir / f"{CID}-json.log").read_bytes() == \
        b'{"log":"hello\\n","stream":"stdout","time":"2026-11-29T06:51:07.123456Z"}\n'


def test_rotation_bounds_the_disk(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {"max-size": "10k", "max-file": "3"})
    line = b"x" * 99 + b"\n"
    count = (1 << 20) // len(line)
    for i in range(count):
        w.write(LogEntry("stdout", line, T0 + timedelta(microseconds=i)))
    w.close()
    names = [p.name for p in _files(log_dir)]
    assert names == [f"{CID}-json.log", f"{CID}-json.log.1", f"{CID}-json.log.2"]
    one = len(b'{"log":"","stream":"stdout","time":"2026-11-29T06:51:07.000000Z"}\n') + 100 + 2
    assert sum(p.stat().st_size for p in _files(log_dir)) <= 3 * (10_000 + one)
    # what is kept is the newest, without gaps, newest last
    times = [e.time for e in jsonfile(CID, log_dir, {}).read()]
    assert times[-1] == T0 + timedelta(microseconds=count - 1)
    assert times == [times[0] + timedelta(microseconds=i) for i in range(len(times))]


def test_max_file_1_keeps_one_file(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {"max-size": "1k"})
    entries = _numbered(200)
    for e in entries:
        w.write(e)
    w.close()
    assert [p.name for p in _files(log_dir)] == [f"{CID}-json.log"]
    kept = list(jsonfile(CID, log_dir, {}).read())
    assert 0 < len(kept) < 200 and kept == entries[-len(kept):]


def test_tail_since_until_across_rotated_files(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {"max-size": "1k", "max-file": "50"})
    entries = _numbered(100)
    for e in entries:
        w.write(e)
    w.close()
    assert len(_files(log_dir)) > 3
    r = jsonfile(CID, log_dir, {})
    assert list(r.read()) == entries
    assert list(r.read(tail=30)) == entries[70:]
    assert list(r.read(since=entries[10].time, until=entries[60].time)) == entries[10:61]
    assert list(r.read(until=entries[60].time, tail=5)) == entries[56:61]


def test_torn_last_line_is_skipped_and_healed(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {})
    w.write(_numbered(1)[0])
    w.close()
    with open(log_dir / f"{CID}-json.log", "ab") as f:
        f.write(b'{"log":"half a li')  # a crash mid-write
    assert list(jsonfile(CID, log_dir, {}).read()) == _numbered(1)
    w = jsonfile(CID, log_dir, {})  # the container restarts
    w.write(_numbered(1, start=1)[0])
    w.close()
    assert list(jsonfile(CID, log_dir, {}).read()) == _numbered(2)


def test_invalid_utf8_becomes_replacement_character(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {})
    w.write(LogEntry("stdout", b"bad \xff byte\n", T0))
    w.close()
    assert b'"bad \\ufffd byte\\n"' in (log_dir / f"{CID}-json.log").read_bytes()
    assert [e.line for e in jsonfile(CID, log_dir, {}).read()] == ["bad \ufffd byte\n".encode()]


@pytest.mark.parametrize("options,message", [
    ({"max-size": "abc"}, "invalid size: 'abc'"),
    ({"max-size": "0"}, "max-size must be a positive number"),
    ({"max-file": "0"}, "max-file cannot be less than 1"),
    ({"max-file": "x"}, "invalid max-file 'x': must be a positive integer"),
    ({"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ({"compress": "true"}, "json-file log driver: compress is not supported by berth"),
    ({"foo": "1"}, "unknown log opt 'foo' for json-file log driver"),
])
def test_bad_options_are_refused(jsonfile, options, message):
    with pytest.raises(InvalidArgument) as err:
        jsonfile.validate_options(options)
    assert str(err.value) == message


def test_dockers_options_are_accepted(jsonfile):
    jsonfile.validate_options({"max-size": "10m", "max-file": "3", "compress": "false", "labels": "a",
                               "env": "B", "tag": "{{.ID}}", "labels-regex": ".", "env-regex": "."})
    jsonfile.validate_options({"max-size": "-1", "max-file": "1"})


# -- following across rotations done by another process --------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from datetime import datetime, timedelta, timezone
    from berth.core import plugins
    from berth.core.drivers import LogEntry
    log_dir, cid, max_size, max_file, count = sys.argv[1:6]
    cls = plugins.drivers("log").get("json-file")
    w = cls(cid, log_dir, {"max-size": max_size, "max-file": max_file})
    t0 = datetime(2026, 11, 29, tzinfo=timezone.utc)
    for i in range(int(count)):
        w.write(LogEntry("stdout", b"line %06d\\n" % i, t0 + timedelta(milliseconds=i)))
        if i % 5 == 4:
            time.sleep(0.002)  # a chatty container (~190 kB/s), not a disk benchmark
    w.close()
    """)


# A follower polls at least every 50 ms; it loses nothing while it is fewer
# than max-file - 1 rotations behind (max-file=1: one rotation).
@pytest.mark.parametrize("max_size,max_file,count", [("16k", "1", 1500), ("4k", "4", 3000)])
def test_follow_survives_rotation_by_another_process(jsonfile, log_dir, max_size, max_file, count):
    first = LogEntry("stdout", b"first\n", T0)
    w = jsonfile(CID, log_dir, {})
    w.write(first)
    w.close()
    proc = None
    follower = jsonfile(CID, log_dir, {}).read(follow=True, stop=lambda: proc.poll() is not None)
    try:
        assert next(follower) == first  # following for sure before the writer starts
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir), CID, max_size, max_file, str(count)])
        got = [e.line for e in follower]
    finally:
        follower.close()
        if proc is not None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert len(_files(log_dir)) == int(max_file)  # it did rotate
    assert len(got) == count and got == [b"line %06d\n" % i for i in range(count)]


def test_follow_started_before_the_file_exists(jsonfile, log_dir):
    done = threading.Event()
    got = []
    follower = threading.Thread(target=lambda: got.extend(jsonfile(CID, log_dir, {}).read(
        follow=True, stop=done.is_set)))
    follower.start()
    try:
        time.sleep(0.2)  # the follower looks at an empty directory
        w = jsonfile(CID, log_dir, {})
        entries = _numbered(5)
        for e in entries:
            w.write(e)
        w.close()
    finally:
        done.set()
        follower.join()
    assert got == entries


def test_closing_a_follower_releases_its_files(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {"max-size": "1k", "max-file": "2"})
    for e in _numbered(50):
        w.write(e)
    before = len(os.listdir("/proc/self/fd"))
    follower = jsonfile(CID, log_dir, {}).read(follow=True)
    next(follower)
    for e in _numbered(50, start=50):
        w.write(e)  # rotations while the follower is paused
    for _ in range(20):
        next(follower)
    follower.close()
    w.close()
    assert len(os.listdir("/proc/self/fd")) <= before


def test_a_line_half_written_when_following_starts_is_read_whole(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {})
    w.write(_numbered(1)[0])
    w.close()
    whole = b'{"log":"late\\n","stream":"stdout","time":"2026-11-29T06:51:08Z"}\n'
    path = log_dir / f"{CID}-json.log"
    with open(path, "ab") as f:
        f.write(whole[:20])  # another process is in the middle of its write
    stopped = False
    follower = jsonfile(CID, log_dir, {}).read(follow=True, tail=1, stop=lambda: stopped)
    assert next(follower) == _numbered(1)[0]
    with open(path, "ab") as f:
        f.write(whole[20:])
    stopped = True
    assert [e.line for e in follower] == [b"late\n"]


def test_tail_of_a_big_log_reads_only_its_end(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {})
    entries = _numbered(20000)
    for e in entries:
        w.write(e)
    w.close()
    start = time.monotonic()
    assert len(list(jsonfile(CID, log_dir, {}).read())) == 20000
    full = time.monotonic() - start
    start = time.monotonic()
    assert list(jsonfile(CID, log_dir, {}).read(tail=3)) == entries[-3:]
    assert (time.monotonic() - start) * 10 < full
    assert list(jsonfile(CID, log_dir, {}).read(tail=3, since=entries[-2].time)) == entries[-2:]


def test_lowering_max_file_drops_the_extra_rotated_files(jsonfile, log_dir):
    w = jsonfile(CID, log_dir, {"max-size": "1k", "max-file": "5"})
    for e in _numbered(100):
        w.write(e)
    w.close()
    assert len(_files(log_dir)) == 5
    w = jsonfile(CID, log_dir, {"max-size": "1k", "max-file": "2"})  # the container is recreated
    w.write(_numbered(1, start=100)[0])
    w.close()
    assert [p.name for p in _files(log_dir)] == [f"{CID}-json.log", f"{CID}-json.log.1"]
