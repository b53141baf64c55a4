"""The log driver suite: what every LogDriver must do.

A driver is built as ``cls(container_id, log_dir, options)`` with the
``driver_options`` fixture (the ``--berth-conformance-opt`` options; a
subclass overrides it for a driver that needs somewhere to send, as
berth's own tests give syslog a unix socket). Cases about reading back run
on ``readable`` drivers only, the refusal case on the others.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from berth.core import plugins
from berth.core.drivers import LogDriver, LogEntry
from berth.core.errors import BerthError, InvalidArgument

T0 = datetime(2026, 11, 29, 6, 51, 7, 123456, tzinfo=timezone.utc)

# lines a container really prints: unicode, JSON-special bytes, a missing final newline
SAMPLES = [
    LogEntry("stdout", b"hello\n", T0),
    LogEntry("stderr", b"oops: \"quoted\" back\\slash\ttab <tag> & amp\n", T0 + timedelta(microseconds=1)),
    LogEntry("stdout", "gr\u00fc\u00df dich \u2603 \U0001f600\n".encode(), T0 + timedelta(seconds=1)),
    LogEntry("stdout", b"\n", T0 + timedelta(seconds=2)),
    LogEntry("stderr", b"\x1b[31mred\x1b[0m\r\n", T0 + timedelta(seconds=3)),
    LogEntry("stdout", b"no newline at the end", T0 + timedelta(seconds=4)),
]


def _written(make_driver, entries):
    drv = make_driver()
    for e in entries:
        drv.write(e)
    drv.close()
    return make_driver()  # a separate reader, as `berth logs` makes


class LoggingSuite:
    KIND = "logging"
    DRIVERS: list[str] | None = None

    @pytest.fixture
    def driver_cls(self, driver_name):
        return plugins.drivers("log").supported(driver_name)

    @pytest.fixture
    def make_driver(self, driver_cls, driver_options, tmp_path):
        """make_driver(container_id="...") -> a driver instance; all closed at teardown."""
        made = []
        log_dir = tmp_path / "logs"

        def make(container_id: str = "bt" + "0" * 62, options: dict | None = None):
            log_dir.mkdir(exist_ok=True, mode=0o700)
            drv = driver_cls(container_id, log_dir, dict(driver_options, **(options or {})))
            made.append(drv)
            return drv

        yield make
        for drv in made:
            drv.close()

    def test_registered_name_matches(self, driver_name, driver_cls):
        assert issubclass(driver_cls, LogDriver)
        assert driver_cls.name == driver_name

    def test_write_close_is_idempotent(self, make_driver):
        drv = make_driver()
        for e in SAMPLES:
            drv.write(e)
        drv.close()
        drv.close()
        make_driver().close()  # closing a driver that never wrote

    def test_empty_options_are_valid(self, driver_cls, driver_options):
        driver_cls.validate_options({})
        driver_cls.validate_options(driver_options)

    def test_unknown_option_is_refused_with_dockers_text(self, driver_name, driver_cls):
        with pytest.raises(InvalidArgument) as err:
            driver_cls.validate_options({"bt-no-such-opt": "1"})
        assert str(err.value) == f"unknown log opt 'bt-no-such-opt' for {driver_name} log driver"

    @pytest.mark.berth_driver(readable=False)
    def test_unreadable_driver_refuses_cleanly(self, make_driver):
        drv = make_driver()
        drv.write(SAMPLES[0])
        drv.close()
        with pytest.raises(BerthError) as err:
            list(make_driver().read())
        assert str(err.value) == "configured logging driver does not support reading"

    # -- readable drivers ----------------------------------------------------------------

    @pytest.mark.berth_driver(readable=True)
    def test_reads_back_exact_lines_streams_and_times(self, make_driver):
        reader = _written(make_driver, SAMPLES)
        assert list(reader.read()) == SAMPLES

    @pytest.mark.berth_driver(readable=True)
    def test_nothing_written_reads_empty(self, make_driver):
        assert list(make_driver().read()) == []
        assert list(make_driver().read(follow=True, stop=lambda: True)) == []

    @pytest.mark.berth_driver(readable=True)
    def test_tail(self, make_driver):
        reader = _written(make_driver, SAMPLES)
        assert list(reader.read(tail=2)) == SAMPLES[-2:]
        assert list(reader.read(tail=0)) == []
        assert list(reader.read(tail=100)) == SAMPLES
        assert list(reader.read(tail=-1)) == SAMPLES

    @pytest.mark.berth_driver(readable=True)
    def test_since_and_until_are_inclusive(self, make_driver):
        reader = _written(make_driver, SAMPLES)
        assert list(reader.read(since=SAMPLES[2].time)) == SAMPLES[2:]
        assert list(reader.read(until=SAMPLES[2].time)) == SAMPLES[:3]
        assert list(reader.read(since=SAMPLES[1].time, until=SAMPLES[3].time)) == SAMPLES[1:4]
        assert list(reader.read(since=SAMPLES[1].time, until=SAMPLES[4].time, tail=2)) == SAMPLES[3:5]
        assert list(reader.read(since=SAMPLES[-1].time + timedelta(seconds=1))) == []

    @pytest.mark.berth_driver(readable=True)
    def test_follow_yields_lines_written_later_and_ends_on_stop(self, make_driver):
        writer = make_driver()
        writer.write(SAMPLES[0])
        done = threading.Event()
        later = [LogEntry("stdout", b"line %d\n" % i, T0 + timedelta(seconds=10 + i)) for i in range(200)]

        def write_later():
            for e in later:
                writer.write(e)
            writer.close()
            done.set()

        got = []
        follower = make_driver().read(follow=True, stop=done.is_set)
        got.append(next(follower))  # following has begun before the writer goes on
        thread = threading.Thread(target=write_later)
        thread.start()
        try:
            got.extend(follower)
        finally:
            thread.join()
        assert got == [SAMPLES[0]] + later

    @pytest.mark.berth_driver(readable=True)
    def test_follow_with_tail_then_new_lines(self, make_driver):
        writer = make_driver()
        for e in SAMPLES:
            writer.write(e)
        follower = make_driver().read(follow=True, tail=1, stop=lambda: True)
        assert next(follower) == SAMPLES[-1]
        extra = LogEntry("stderr", b"after\n", T0 + timedelta(minutes=1))
        writer.write(extra)
        writer.close()
        assert list(follower) == [extra]

    @pytest.mark.berth_driver(readable=True)
    def test_follow_ends_after_until(self, make_driver):
        writer = make_driver()
        for e in SAMPLES:
            writer.write(e)
        writer.close()
        got = list(make_driver().read(follow=True, until=SAMPLES[1].time))  # no stop: until alone ends it
        assert got == SAMPLES[:2]
