"""Conformance suite for network drivers, against plain network namespaces.

Each test makes its own namespaces (`ip netns add bt<hex>`) with a busybox
httpd inside, its own bridge name and a /24 of its own, and removes all of
it (namespaces, veths, bridge, nftables table) even on failure. Traffic
goes only to 127.0.0.1 and to the namespaces' addresses.

A third-party driver is checked by adding its name to DRIVERS (the generic
tests) -- wiring tests below are for drivers with namespace == "new" that
give the container an address (bridge).
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import subprocess
import sys
import urllib.request

import pytest
from harness import fetch

from berth.core import plugins
from berth.core.drivers import Endpoint, NetworkSpec, PortMapping

DRIVERS = ["bridge", "host", "none", "container"]


def sh(*args, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def www(tmp_path):
    (tmp_path / "index.html").write_text("hello from the namespace\n")
    return tmp_path


@pytest.fixture
def net():
    tag = secrets.token_hex(3)
    prefix = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"
    spec = NetworkSpec(id=secrets.token_hex(32), name=f"bt{tag}", driver="bridge", subnet=f"{prefix}.0/24",
                       gateway=f"{prefix}.1", bridge=f"bt{tag}br", table=f"berth_bt{tag}")
    yield spec
    drv = plugins.drivers("network").get("bridge")()
    drv.delete_network(spec)
    drv.delete_table(spec.table)
    assert spec.bridge not in sh("ip", "-o", "link").stdout
    assert spec.table not in sh("nft", "list", "tables").stdout


@pytest.fixture
def namespaces(www):
    """make(n) -> a namespace running httpd on :80; returns its pid."""
    made, procs = [], []

    def make() -> int:
        name = f"bt{secrets.token_hex(4)}"
        sh("ip", "netns", "add", name)
        made.append(name)
        proc = subprocess.Popen(["ip", "netns", "exec", name, "busybox", "httpd", "-f", "-p", "80", "-h", str(www)])
        procs.append(proc)
        return proc.pid

    yield make
    for proc in procs:
        proc.kill()
        proc.wait()
    for name in made:
        sh("ip", "netns", "del", name, check=False)
    left = sh("ip", "netns").stdout
    assert not any(name in left for name in made)


def endpoint(net: NetworkSpec, host: int) -> Endpoint:
    prefix = net.subnet.rsplit(".", 1)[0]
    address = f"{prefix}.{host}"
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))
    return Endpoint(container_id=secrets.token_hex(32), network_id=net.id, address=address, prefixlen=24,
                    gateway=net.gateway, mac=mac, host_ifname=f"veth{secrets.token_hex(3)}")


def in_ns(pid: int, *cmd: str) -> subprocess.CompletedProcess:
    return sh("nsenter", "-t", str(pid), "-n", *cmd, check=False)


@pytest.fixture
def bridge():
    return plugins.drivers("network").get("bridge")()


# -- every driver -----------------------------------------------------------------------


@pytest.mark.parametrize("name", DRIVERS)
def test_registered_and_documented(name):
    cls = plugins.drivers("network").get(name)
    assert cls.name == name
    assert cls.namespace in ("new", "host", "join")
    assert cls.unsupported_reason() is None


@pytest.mark.parametrize("name", ["host", "none", "container"])
def test_unwired_drivers_are_idempotent_no_ops(name, net):
    drv = plugins.drivers("network").get(name)()
    ep = endpoint(net, 2)
    for _ in range(2):
        drv.create_network(net)
        drv.unpublish(net, ep)
        drv.detach(net, ep)
        drv.delete_network(net)
    assert net.bridge not in sh("ip", "-o", "link").stdout


# -- bridge ---------------------------------------------------------------------------------


def test_create_network_is_idempotent(bridge, net):
    bridge.create_network(net)
    bridge.create_network(net)
    addrs = json.loads(sh("ip", "-j", "addr", "show", "dev", net.bridge).stdout)[0]
    assert [a["local"] for a in addrs["addr_info"] if a["family"] == "inet"] == [net.gateway]
    rules = sh("nft", "list", "table", "ip", net.table).stdout
    assert rules.count(f"ip saddr {net.subnet} oifname != \"{net.bridge}\" masquerade") == 1
    bridge.delete_network(net)
    bridge.delete_network(net)
    assert net.bridge not in sh("ip", "-o", "link").stdout
    assert f'"net:{net.bridge}"' not in sh("nft", "list", "table", "ip", net.table).stdout


def test_attach_wires_the_namespace(bridge, net, namespaces):
    pid = namespaces()
    ep = endpoint(net, 2)
    bridge.create_network(net)
    bridge.attach(net, ep, pid)
    link = json.loads(in_ns(pid, "ip", "-j", "addr", "show", "dev", "eth0").stdout)[0]
    assert link["address"] == ep.mac
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [ep.address]
    assert f"default via {net.gateway} dev eth0" in in_ns(pid, "ip", "route").stdout
    master = json.loads(sh("ip", "-j", "link", "show", "dev", ep.host_ifname).stdout)[0]["master"]
    assert master == net.bridge
    assert "hello from the namespace" in fetch(f"http://{ep.address}:80/")
    bridge.detach(net, ep)
    bridge.detach(net, ep)
    assert ep.host_ifname not in sh("ip", "-o", "link").stdout
    assert "eth0" not in in_ns(pid, "ip", "-o", "link").stdout


def test_namespaces_on_one_bridge_reach_each_other(bridge, net, namespaces):
    a, b = namespaces(), namespaces()
    ep_a, ep_b = endpoint(net, 2), endpoint(net, 3)
    bridge.create_network(net)
    bridge.attach(net, ep_a, a)
    bridge.attach(net, ep_b, b)
    out = in_ns(a, "timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://{ep_b.address}:80/")
    assert "hello from the namespace" in out.stdout, out.stderr
    bridge.detach(net, ep_a)
    bridge.detach(net, ep_b)


def test_publish_from_localhost_and_hairpin(bridge, net, namespaces):
    server, client = namespaces(), namespaces()
    ep, ep_client = endpoint(net, 2), endpoint(net, 3)
    bridge.create_network(net)
    bridge.attach(net, ep, server)
    bridge.attach(net, ep_client, client)
    wildcard, loopback = free_port(), free_port()
    bridge.publish(net, ep, [PortMapping("tcp", "", wildcard, 80), PortMapping("tcp", "127.0.0.1", loopback, 80)])
    assert "hello" in fetch(f"http://127.0.0.1:{wildcard}/")
    assert "hello" in fetch(f"http://127.0.0.1:{loopback}/")
    # another namespace on the bridge, through the host's (gateway) address: hairpin NAT
    out = in_ns(client, "timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://{net.gateway}:{wildcard}/")
    assert "hello" in out.stdout, out.stderr
    # the loopback-only port is not published towards the bridge
    out = in_ns(client, "timeout", "3", "busybox", "wget", "-q", "-O", "-", f"http://{net.gateway}:{loopback}/")
    assert "hello" not in out.stdout
    bridge.unpublish(net, ep)
    bridge.unpublish(net, ep)
    assert f"ctr:{ep.container_id}" not in sh("nft", "list", "table", "ip", net.table).stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{loopback}/", timeout=2)
    bridge.detach(net, ep)
    bridge.detach(net, ep_client)


def test_attach_failure_leaves_detach_able_state(bridge, net, namespaces):
    pid = namespaces()
    ep = endpoint(net, 2)
    bridge.create_network(net)
    bridge.attach(net, ep, pid)
    with pytest.raises(Exception):
        bridge.attach(net, ep, pid)  # the same veth twice: refused
    bridge.detach(net, ep)
    assert ep.host_ifname not in sh("ip", "-o", "link").stdout


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
