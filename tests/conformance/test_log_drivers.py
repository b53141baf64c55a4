"""berth's log drivers through the kit's logging suite (berth.testing.logging);
syslog writes to a unix datagram socket of the case's own, which drops its
messages."""

from __future__ import annotations

import socket

import pytest

from berth.testing.logging import LoggingSuite


class TestLogging(LoggingSuite):
    @pytest.fixture
    def driver_options(self, driver_name, tmp_path):
        if driver_name != "syslog":
            yield {}
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(tmp_path / "syslog.sock"))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
            yield {"syslog-address": f"unixgram://{tmp_path / 'syslog.sock'}"}
