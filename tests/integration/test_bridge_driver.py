"""The bridge driver's own promises, beyond the kit's network suite: its
device, gateway address and nftables rules, Docker's bridge options (name,
MTU, masquerade), reaching a container from the host, hairpin NAT,
loopback-only ports, and its lazy pyroute2 import."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest

from berth.core.drivers import PortMapping
from berth.core.errors import InvalidArgument
from berth.plugins.network.bridge import MASQUERADE, MTU, NAME, BridgeDriver
from berth.testing.network import HELLO, NetworkFixtures, endpoint, in_ns, network_spec, wget
from berth.testing.support import fetch, free_port, sh


class TestBridge(NetworkFixtures):
    DRIVERS = ["bridge"]

    def test_create_network_makes_one_gateway_address_and_one_masquerade_rule(self, driver, net):
        driver.create_network(net)
        driver.create_network(net)
        addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", net.bridge).stdout)[0]
        assert [a["local"] for a in addrs["addr_info"] if a["family"] == "inet"] == [net.gateway]
        rules = sh("nft", "list", "table", "ip", net.table).stdout
        assert rules.count(f"ip saddr {net.subnet} oifname != \"{net.bridge}\" masquerade") == 1
        driver.delete_network(net)
        driver.delete_network(net)
        assert net.bridge not in sh("ip", "-o", "link").stdout
        assert f'"net:{net.bridge}"' not in sh("nft", "list", "table", "ip", net.table).stdout

    def test_attach_puts_the_veth_on_the_bridge_and_the_host_reaches_the_container(self, driver, net, namespaces):
        pid = namespaces()
        ep = endpoint(net, 2)
        driver.create_network(net)
        driver.attach(net, ep, pid)
        link = json.loads(in_ns(pid, "ip", "-j", "addr", "show", "dev", "eth0").stdout)[0]
        assert link["address"] == ep.mac
        master = json.loads(sh("ip", "-j", "link", "show", "dev", ep.host_ifname).stdout)[0]["master"]
        assert master == net.bridge
        assert HELLO in fetch(f"http://{ep.address}:80/")
        driver.detach(net, ep)
        assert ep.host_ifname not in sh("ip", "-o", "link").stdout

    def test_hairpin_and_loopback_only_ports(self, driver, net, namespaces):
        server, client = namespaces(), namespaces()
        ep, ep_client = endpoint(net, 2), endpoint(net, 3)
        driver.create_network(net)
        driver.attach(net, ep, server)
        driver.attach(net, ep_client, client)
        wildcard, loopback = free_port(), free_port()
        driver.publish(net, ep, [PortMapping("tcp", "", wildcard, 80), PortMapping("tcp", "127.0.0.1", loopback, 80)])
        # another namespace on the bridge, through the host's (gateway) address: hairpin NAT
        out = wget(client, f"http://{net.gateway}:{wildcard}/")
        assert HELLO in out.stdout, out.stderr
        # the loopback-only port is not published towards the bridge
        out = wget(client, f"http://{net.gateway}:{loopback}/", seconds=3)
        assert HELLO not in out.stdout
        driver.unpublish(net, ep)
        assert f"ctr:{ep.container_id}" not in sh("nft", "list", "table", "ip", net.table).stdout
        driver.detach(net, ep)
        driver.detach(net, ep_client)


@pytest.mark.parametrize("options,message", [
    ({NAME: "a-name-longer-than-15"}, "invalid bridge name 'a-name-longer-than-15': 1 to 15 letters, digits, '_', '.' "
                                      "or '-'"),
    ({NAME: "bad/name"}, "invalid bridge name 'bad/name': 1 to 15 letters, digits, '_', '.' or '-'"),
    ({MTU: "9"}, "invalid MTU number: 9"),
    ({MTU: "big"}, "invalid MTU number: big"),
    ({MASQUERADE: "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ({"com.docker.network.bridge.enable_icc": "false"}, "network driver bridge does not know option "
     "'com.docker.network.bridge.enable_icc' (it takes com.docker.network.bridge.name, com.docker.network.driver.mtu, "
     "com.docker.network.bridge.enable_ip_masquerade)"),
])
def test_bad_options_are_refused_with_one_line(options, message):
    with pytest.raises(InvalidArgument) as err:
        BridgeDriver.validate_options(options)
    assert str(err.value) == message


def test_options_name_the_device_set_the_mtu_and_turn_masquerade_off(tmp_path):
    name = f"bt{secrets.token_hex(4)}"
    options = {NAME: name, MTU: "1400", MASQUERADE: "0"}
    assert BridgeDriver.validate_options(options) == {NAME: name, MTU: "1400", MASQUERADE: "false"}
    net = network_spec("bridge", options)
    assert net.bridge == name == BridgeDriver.device_name(net.id, net.options)
    driver = BridgeDriver(tmp_path)
    try:
        driver.create_network(net)
        link = json.loads(sh("ip", "-j", "link", "show", "dev", name).stdout)[0]
        assert link["mtu"] == 1400
        rules = sh("nft", "list", "table", "ip", net.table).stdout
        assert "masquerade" in rules and f"ip saddr {net.subnet} oifname" not in rules  # hairpin only
    finally:
        driver.delete_network(net)
        driver.cleanup(net.table)
    assert name not in sh("ip", "-o", "link").stdout


def test_the_bridge_driver_loads_only_iproute_and_pyroute2_still_works_whole():
    """bridge._netlink() enters pyroute2 lazily; other code importing pyroute2
    in the same process must still get the whole package."""
    code = ("import sys; from berth.plugins.network.bridge import _netlink; IPRoute, _ = _netlink(); "
            "assert 'pyroute2.ndb.main' not in sys.modules; "
            "import pyroute2; from pyroute2 import IPRoute as Whole, NDB; "
            "assert Whole is IPRoute and NDB.__name__ == 'NDB'; "
            "ipr = IPRoute(); assert ipr.link_lookup(ifname='lo'); ipr.close(); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout == "ok\n", res.stderr
