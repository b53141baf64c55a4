"""Fixtures of the log driver conformance suite.

The suite runs against every registered log driver
(`berth.core.plugins.drivers("log")`, so installed third-party drivers too).
``BERTH_CONFORMANCE_LOG=name1,name2`` restricts the list, e.g. to run only
your own driver::

    BERTH_CONFORMANCE_LOG=mylog pytest tests/conformance/logging

A driver that needs something to talk to declares it in OPTION_FACTORIES:
a function of a temporary directory returning (options, cleanup). syslog
gets a unix datagram socket that receives (and drops) its messages.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from berth.core import plugins


def _selected_drivers() -> list[str]:
    registry = plugins.drivers("log")
    wanted = os.environ.get("BERTH_CONFORMANCE_LOG")
    if wanted:
        return [n.strip() for n in wanted.split(",") if n.strip()]
    return [n for n in registry.names() if registry.get(n).unsupported_reason() is None]


def pytest_generate_tests(metafunc):
    """Each case runs on the drivers it applies to: cases asking for the
    `readable` fixture only on drivers that read back, `unreadable` only on
    those that do not (so nothing is skipped)."""
    if "driver_name" in metafunc.fixturenames:
        names = _selected_drivers()
        registry = plugins.drivers("log")
        if "readable" in metafunc.fixturenames:
            names = [n for n in names if registry.get(n).readable]
        if "unreadable" in metafunc.fixturenames:
            names = [n for n in names if not registry.get(n).readable]
        metafunc.parametrize("driver_name", names)


def _syslog_options(tmp: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp / "syslog.sock"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)

    def cleanup():
        sock.close()

    return {"syslog-address": f"unixgram://{tmp / 'syslog.sock'}"}, cleanup


OPTION_FACTORIES = {"syslog": _syslog_options}


@pytest.fixture
def driver_cls(driver_name):
    return plugins.drivers("log").supported(driver_name)


@pytest.fixture
def driver_options(driver_name, tmp_path):
    factory = OPTION_FACTORIES.get(driver_name)
    if factory is None:
        yield {}
        return
    options, cleanup = factory(tmp_path)
    try:
        yield options
    finally:
        cleanup()


@pytest.fixture
def make_driver(driver_cls, driver_options, tmp_path):
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
