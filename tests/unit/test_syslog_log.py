"""The syslog driver against real sockets on this host (unix datagram, UDP and
TCP on 127.0.0.1): the exact bytes a syslog server receives."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

import pytest

from berth.core.drivers import LogEntry
from berth.core.errors import InvalidArgument, Unsupported
from berth.plugins.logging.syslog import SyslogLogDriver

CID = "0123456789abcdef" * 4
T = datetime(2026, 11, 29, 6, 51, 7, 123456, tzinfo=timezone.utc)
HOST = socket.gethostname()
PID = os.getpid()


@pytest.fixture
def unixgram(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "log.sock"))
    sock.settimeout(5)
    yield sock, f"unixgram://{tmp_path / 'log.sock'}"
    sock.close()


@pytest.fixture
def udp():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock, f"udp://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _send(tmp_path, options, *entries):
    drv = SyslogLogDriver(CID, tmp_path, options)
    try:
        for e in entries:
            drv.write(e)
    finally:
        drv.close()


def test_rfc5424_over_unix_datagram(tmp_path, unixgram):
    sock, address = unixgram
    _send(tmp_path, {"syslog-address": address}, LogEntry("stdout", b"hello\n", T), LogEntry("stderr", b"oops\n", T))
    # daemon (3) * 8 + info (6) = 30; + err (3) = 27; Docker puts the tag in APP-NAME and MSGID
    assert sock.recv(4096) == f"<30>1 2026-11-29T06:51:07Z {HOST} 0123456789ab {PID} 0123456789ab - hello\n".encode()
    assert sock.recv(4096) == f"<27>1 2026-11-29T06:51:07Z {HOST} 0123456789ab {PID} 0123456789ab - oops\n".encode()


def test_rfc5424_over_udp_with_tag_and_facility(tmp_path, udp):
    sock, address = udp
    _send(tmp_path, {"syslog-address": address, "tag": "web-{{.ID}}", "syslog-facility": "local3"},
          LogEntry("stdout", "gr\u00fc\u00df\n".encode(), T))
    assert sock.recv(4096) == (f"<158>1 2026-11-29T06:51:07Z {HOST} web-0123456789ab {PID} web-0123456789ab - "
                               "gr\u00fc\u00df\n").encode()


def test_rfc5424micro_and_rfc3164(tmp_path, unixgram):
    sock, address = unixgram
    _send(tmp_path, {"syslog-address": address, "syslog-format": "rfc5424micro"}, LogEntry("stdout", b"a\n", T))
    assert sock.recv(4096).startswith(f"<30>1 2026-11-29T06:51:07.123456Z {HOST} ".encode())
    _send(tmp_path, {"syslog-address": address, "syslog-format": "rfc3164", "syslog-facility": "1"},
          LogEntry("stderr", b"b", T))
    local = T.astimezone()
    stamp = local.strftime("%b ") + f"{local.day:2d}" + local.strftime(" %H:%M:%S")
    assert sock.recv(4096) == f"<11>{stamp} {HOST} 0123456789ab[{PID}]: b\n".encode()


def test_tcp_stream(tmp_path):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    try:
        _send(tmp_path, {"syslog-address": f"tcp://127.0.0.1:{server.getsockname()[1]}"},
              LogEntry("stdout", b"one\n", T), LogEntry("stdout", b"two\n", T))
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while data.count(b"\n") < 2:
                chunk = conn.recv(4096)
                assert chunk
                data += chunk
        assert data.split(b"\n")[:2] == [
            f"<30>1 2026-11-29T06:51:07Z {HOST} 0123456789ab {PID} 0123456789ab - {w}".encode() for w in ("one", "two")]
    finally:
        server.close()


def test_reconnects_when_the_server_restarts(tmp_path, unixgram):
    sock, address = unixgram
    drv = SyslogLogDriver(CID, tmp_path, {"syslog-address": address})
    try:
        drv.write(LogEntry("stdout", b"before\n", T))
        assert sock.recv(4096).endswith(b"- before\n")
        sock.close()
        os.unlink(tmp_path / "log.sock")
        again = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        again.bind(str(tmp_path / "log.sock"))
        again.settimeout(5)
        with again:
            drv.write(LogEntry("stdout", b"after\n", T))
            assert again.recv(4096).endswith(b"- after\n")
    finally:
        drv.close()


def test_cannot_read():
    assert SyslogLogDriver.readable is False
    with pytest.raises(Unsupported, match="^configured logging driver does not support reading$"):
        list(SyslogLogDriver(CID, "/nonexistent", {"syslog-address": "udp://127.0.0.1:9"}).read())


@pytest.mark.parametrize("options,message", [
    ({"foo": "1"}, "unknown log opt 'foo' for syslog log driver"),
    ({"syslog-address": "http://127.0.0.1"}, "unsupported scheme: 'http'"),
    ({"syslog-address": "unix:///nonexistent/bt-sock"}, "stat /nonexistent/bt-sock: no such file or directory"),
    ({"syslog-facility": "bogus"}, "invalid syslog facility"),
    ({"syslog-facility": "24"}, "invalid syslog facility"),
    ({"syslog-format": "json"}, "Invalid syslog format"),
])
def test_bad_options(options, message):
    with pytest.raises(InvalidArgument) as err:
        SyslogLogDriver.validate_options(options)
    assert str(err.value) == message


def test_dockers_options_are_accepted():
    SyslogLogDriver.validate_options({"syslog-address": "udp://127.0.0.1", "syslog-facility": "local7",
                                      "syslog-format": "rfc3164", "tag": "x", "labels": "a", "env": "B"})
