"""Fixtures of the registry conformance suite.

What any driver speaking the OCI distribution HTTP API (berth's ``docker``
driver, or a third party's replacement) must satisfy, against a real
registry (Debian's ``docker-registry``, started on 127.0.0.1 for the
module) and a scripted lying one. ``BERTH_CONFORMANCE_REGISTRY=name1,name2``
picks the drivers (default: ``docker``)::

    BERTH_CONFORMANCE_REGISTRY=myregistry pytest tests/conformance/registry

A driver is built as ``cls("127.0.0.1:PORT", {"insecure": True, ...})``.
"""

from __future__ import annotations

import os
import secrets

import pytest
from registry_server import fake_server_factory, registry_open  # noqa: F401  (fixtures)

from berth.core import plugins


def _selected() -> list[str]:
    wanted = os.environ.get("BERTH_CONFORMANCE_REGISTRY")
    return [n.strip() for n in wanted.split(",") if n.strip()] if wanted else ["docker"]


@pytest.fixture(params=_selected())
def driver_cls(request):
    return plugins.drivers("registry").supported(request.param)


@pytest.fixture
def make_driver(driver_cls):
    """``make(location, **options)``: a driver over plain HTTP (127.0.0.1 only)."""
    made = []

    def make(location: str, **options):
        driver = driver_cls(location, {"insecure": True, **options})
        made.append(driver)
        return driver

    yield make
    for driver in made:
        close = getattr(driver, "close", None)
        if close:
            close()


@pytest.fixture
def repo():
    """A repository name no other test uses."""
    return f"conformance/bt{secrets.token_hex(4)}"
