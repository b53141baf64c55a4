"""berth's network drivers, and contrib's macvlan, through the kit's network suite
(berth.testing.network). macvlan runs twice: on a device of its own (no parent, as Docker
makes one), and on a parent device given with -o parent= (one end of a veth pair)."""

import secrets
import subprocess

import pytest

from berth.testing.network import NetworkSuite


class TestNetwork(NetworkSuite):
    DRIVERS = ["bridge", "host", "none", "container", "macvlan"]


class TestOnAParentDevice(NetworkSuite):
    DRIVERS = ["macvlan"]

    @pytest.fixture
    def driver_options(self):
        """A veth pair of the case's own, one end the parent (-o parent=), removed after it.
        (This kernel has no dummy links.)"""
        tag = secrets.token_hex(3)
        name, peer = f"btp{tag}", f"btq{tag}"
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
        for link in (name, peer):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield {"parent": name}
        subprocess.run(["ip", "link", "del", name], check=True)
