"""The bridge driver's own promises, beyond the kit's network suite: its
device, gateway address and nftables rules, reaching a container from the
host, hairpin NAT, loopback-only ports, and its lazy pyroute2 import."""

from __future__ import annotations

import json
import subprocess
import sys

from berth.core.drivers import PortMapping
from berth.testing.network import HELLO, NetworkFixtures, endpoint, in_ns, wget
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
