"""The network driver suite: what every NetworkDriver must do, against plain
network namespaces.

Each case makes its own namespaces (``ip netns add bt<hex>``, a busybox
httpd inside), a network of its own (a ``bt<hex>br`` device name, an
nftables table ``berth_bt<hex>`` and a /24 of 10.0.0.0/8 that no route of
this host covers) and removes all of it, even on failure. Traffic goes only
to 127.0.0.1 and to the namespaces' addresses. The network's options are
the ``--berth-conformance-opt`` options (a macvlan driver's ``parent=``).

Drivers are built as ``cls(home)`` on a temporary home; a network's
options go through the driver's ``validate_options`` and its device is
the driver's ``device_name``, as berth does; what ``attach`` returns is
handed to ``detach``. Cases that wire a namespace run for drivers whose
networks users create (``user_creatable``: they give the container an
address); publishing cases for drivers that declare ``publishes_ports``.
Needs root, iproute2 (``ip``, ``nsenter``) and busybox.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.request
from types import MappingProxyType

import pytest

from berth.core import plugins
from berth.core.drivers import Endpoint, NetworkDriver, NetworkSpec, PortMapping
from berth.core.errors import InvalidArgument
from berth.testing.support import fetch, free_port, free_subnet, sh

HELLO = "hello from the namespace\n"


def endpoint(net: NetworkSpec, host: int) -> Endpoint:
    """The endpoint berth would hand the driver for address .`host` of `net`."""
    prefix = net.subnet.rsplit(".", 1)[0]
    address = f"{prefix}.{host}"
    mac = "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))
    return Endpoint(container_id=secrets.token_hex(32), network_id=net.id, address=address, prefixlen=24,
                    gateway=net.gateway, mac=mac, host_ifname=f"veth{secrets.token_hex(3)}")


def network_spec(driver: str, options: dict | None = None) -> NetworkSpec:
    """A network of `driver` as berth would hand it over, that no other test
    uses: name bt<hex>, its own nftables table, a /24 that no route of this
    host covers, `options` as the driver's validate_options returns them and
    the device its device_name names."""
    cls = plugins.drivers("network").get(driver)
    tag = secrets.token_hex(3)
    subnet = free_subnet()
    network_id = secrets.token_hex(32)
    options = cls.validate_options(dict(options or {}))
    return NetworkSpec(id=network_id, name=f"bt{tag}", driver=driver, subnet=str(subnet),
                       gateway=str(subnet.network_address + 1), bridge=cls.device_name(network_id, options),
                       table=f"berth_bt{tag}", options=MappingProxyType(options))


def in_ns(pid: int, *cmd: str) -> subprocess.CompletedProcess:
    """Run `cmd` in the network namespace of `pid`."""
    return sh("nsenter", "-t", str(pid), "-n", *cmd, check=False)


def links() -> set[str]:
    """The names of the host's network devices."""
    return {link["ifname"] for link in json.loads(sh("ip", "-j", "link").stdout)}


def wget(pid: int, url: str, seconds: int = 5) -> subprocess.CompletedProcess:
    return in_ns(pid, "timeout", str(seconds), "busybox", "wget", "-q", "-O", "-", url)


class NetworkFixtures:
    """The suite's fixtures alone, for a driver's own further cases::

        class TestMyDriver(NetworkFixtures):
            DRIVERS = ["mydriver"]

            def test_something(self, driver, net, namespaces): ...
    """

    KIND = "network"
    DRIVERS: list[str] | None = None

    @pytest.fixture
    def www(self, tmp_path):
        (tmp_path / "index.html").write_text(HELLO)
        return tmp_path

    @pytest.fixture
    def make_driver(self, driver_name, tmp_path):
        """make_driver() -> a new instance on the case's driver home (as another berth process would make)."""
        cls = plugins.drivers("network").supported(driver_name)
        home = tmp_path / "network-home"
        home.mkdir(mode=0o700, exist_ok=True)
        return lambda: cls(home)

    @pytest.fixture
    def driver(self, make_driver):
        return make_driver()

    @pytest.fixture
    def net(self, driver_name, driver_options, make_driver):
        """A network of the driver's own, removed (with its table) at teardown."""
        spec = network_spec(driver_name, driver_options)
        yield spec
        drv = make_driver()
        drv.delete_network(spec)
        drv.cleanup(spec.table)
        assert not spec.bridge or spec.bridge not in links()
        assert spec.table not in sh("nft", "list", "tables", check=False).stdout

    @pytest.fixture
    def namespaces(self, www):
        """make() -> the PID of a new namespace running httpd on :80."""
        made, procs = [], []

        def make() -> int:
            name = f"bt{secrets.token_hex(4)}"
            sh("ip", "netns", "add", name)
            made.append(name)
            sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
            proc = subprocess.Popen(["ip", "netns", "exec", name, "busybox", "httpd", "-f", "-p", "80",
                                     "-h", str(www)])
            procs.append(proc)
            # `ip netns exec` enters the namespace after it started: hand out the PID once it has
            target, deadline = os.stat(f"/run/netns/{name}").st_ino, time.monotonic() + 10
            while os.stat(f"/proc/{proc.pid}/ns/net").st_ino != target:
                assert time.monotonic() < deadline and proc.poll() is None, "ip netns exec did not start"
                time.sleep(0.005)
            return proc.pid

        yield make
        for proc in procs:
            proc.kill()
            proc.wait()
        for name in made:
            sh("ip", "netns", "del", name, check=False)
        left = sh("ip", "netns").stdout
        assert not any(name in left for name in made)



class NetworkSuite(NetworkFixtures):
    """What every network driver must do."""

    # -- every driver ----------------------------------------------------------------

    def test_registered_and_documented(self, driver_name, driver):
        cls = type(driver)
        assert isinstance(driver, NetworkDriver)
        assert cls.name == driver_name
        assert cls.namespace in ("new", "host", "join")
        assert cls.__doc__ and cls.__doc__.strip()

    def test_options_are_validated(self, driver_name, driver, driver_options):
        cls = type(driver)
        with pytest.raises(InvalidArgument) as err:
            cls.validate_options({"bt-no-such-opt": "1"})
        assert "bt-no-such-opt" in str(err.value) and "\n" not in str(err.value)
        options = cls.validate_options(dict(driver_options))
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in options.items())
        assert cls.validate_options(options) == options  # what berth stored is valid again
        assert isinstance(cls.device_name("0" * 64, options), str)

    def test_network_lifetime_is_idempotent(self, driver, make_driver, net):
        driver.create_network(net)
        make_driver().create_network(net)  # "ensure", from another process
        driver.delete_network(net)
        make_driver().delete_network(net)  # missing is not an error
        assert not net.bridge or net.bridge not in links()

    def test_undoing_what_was_never_done_is_harmless(self, driver, net):
        driver.create_network(net)
        ep = endpoint(net, 2)
        for _ in range(2):
            driver.unpublish(net, ep)
            driver.detach(net, ep, None)
        driver.delete_network(net)

    # -- drivers that give a container an address --------------------------------------

    @pytest.mark.berth_driver(user_creatable=True)
    def test_attach_wires_the_namespace_and_detach_undoes_it(self, driver, make_driver, net, namespaces):
        pid = namespaces()
        ep = endpoint(net, 2)
        driver.create_network(net)
        attached = driver.attach(net, ep, pid)
        assert attached is None or json.loads(json.dumps(attached)) == attached  # berth stores it as JSON
        link = json.loads(in_ns(pid, "ip", "-j", "addr", "show", "dev", ep.ifname).stdout)[0]
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == [ep.address]
        assert f"default via {net.gateway} dev {ep.ifname}" in in_ns(pid, "ip", "route").stdout
        make_driver().detach(net, ep, attached)  # any process detaches, with what attach returned
        driver.detach(net, ep, attached)
        assert ep.ifname not in in_ns(pid, "ip", "-o", "link").stdout
        assert ep.host_ifname not in links()
        driver.delete_network(net)
        assert not net.bridge or net.bridge not in links()

    @pytest.mark.berth_driver(user_creatable=True)
    def test_namespaces_on_one_network_reach_each_other(self, driver, net, namespaces):
        a, b = namespaces(), namespaces()
        ep_a, ep_b = endpoint(net, 2), endpoint(net, 3)
        driver.create_network(net)
        attached_a = driver.attach(net, ep_a, a)
        attached_b = driver.attach(net, ep_b, b)
        out = wget(a, f"http://{ep_b.address}:80/")
        assert HELLO in out.stdout, out.stderr
        out = wget(b, f"http://{ep_a.address}:80/")
        assert HELLO in out.stdout, out.stderr
        driver.detach(net, ep_a, attached_a)
        driver.detach(net, ep_b, attached_b)

    @pytest.mark.berth_driver(user_creatable=True)
    def test_a_failed_attach_leaves_what_detach_removes(self, driver, net, namespaces):
        pid = namespaces()
        ep = endpoint(net, 2)
        driver.create_network(net)
        driver.attach(net, ep, pid)
        with pytest.raises(Exception):
            driver.attach(net, ep, pid)  # the same endpoint twice: refused
        driver.detach(net, ep, None)  # as berth does after a failed attach
        assert ep.ifname not in in_ns(pid, "ip", "-o", "link").stdout
        assert ep.host_ifname not in links()

    # -- drivers that publish ports ------------------------------------------------------

    @pytest.mark.berth_driver(publishes_ports=True)
    def test_published_ports_answer_on_localhost_until_unpublished(self, driver, net, namespaces):
        pid = namespaces()
        ep = endpoint(net, 2)
        driver.create_network(net)
        attached = driver.attach(net, ep, pid)
        wildcard, loopback = free_port(), free_port()
        driver.publish(net, ep, [PortMapping("tcp", "", wildcard, 80), PortMapping("tcp", "127.0.0.1", loopback, 80)])
        assert HELLO in fetch(f"http://127.0.0.1:{wildcard}/")
        assert HELLO in fetch(f"http://127.0.0.1:{loopback}/")
        driver.unpublish(net, ep)
        driver.unpublish(net, ep)
        for port in (wildcard, loopback):
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        driver.detach(net, ep, attached)
