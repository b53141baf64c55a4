"""The bridge driver: a host bridge, one veth pair per container, NAT.

Devices, addresses and routes go through pyroute2 (netlink); forwarding
rules through nftables (`nft -f -`, one atomic batch per change) in the
installation's own table `ip <table>`:

- prerouting / output (nat): DNAT of published ports. `output` handles
  connections from this host itself, including to 127.0.0.1: the bridge has
  `route_localnet=1` so a DNAT-ed loopback packet may leave through it, and
  postrouting masquerades it to the gateway address so the reply returns.
  A port published on a loopback address gets only the `output` rule: it is
  reachable from this host only.
- postrouting (nat): masquerade of the subnet going out (not for internal
  networks), of 127.0.0.0/8 sources going to the bridge, and hairpin
  (container -> published port -> container on the same bridge).
- guard (filter, prerouting): nothing arriving from the bridge may reach
  127.0.0.0/8 (route_localnet must not open the host's loopback services).
- forward (filter): accept the bridge's traffic; internal networks drop
  everything leaving or entering the bridge from elsewhere.

Every rule carries a comment: "net:<bridge>" or "ctr:<container id>",
so a network's or a container's rules are found and deleted by handle.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import time

from berth.core.drivers import Endpoint, NetworkDriver, NetworkSpec, PortMapping
from berth.core.errors import BerthError, InvalidArgument

TYPE_CHECKING = False  # subprocess, json, shutil and threading load where used: `create -p` imports this module
if TYPE_CHECKING:
    import subprocess

#: Docker's bridge options this driver takes (``network create -o KEY=VALUE``)
NAME = "com.docker.network.bridge.name"
MTU = "com.docker.network.driver.mtu"
MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_BOOLS = {"1": "true", "t": "true", "T": "true", "TRUE": "true", "true": "true", "True": "true",
          "0": "false", "f": "false", "F": "false", "FALSE": "false", "false": "false", "False": "false"}

CHAINS = """table ip {table} {{
    chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
    chain output {{ type nat hook output priority -100; policy accept; }}
    chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
    chain forward {{ type filter hook forward priority filter; policy accept; }}
    chain guard {{ type filter hook prerouting priority raw; policy accept; }}
}}
"""


def nft(script: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nft batch (atomic: all of it or nothing)."""
    import subprocess

    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise BerthError(f"nftables refused the rules: {proc.stderr.strip().splitlines()[-1] if proc.stderr else ''}")
    return proc


def rules_tagged(table: str, comment: str | None = None) -> list[tuple[str, int, str]]:
    """(chain, handle, comment) of the table's rules, those with `comment` only if given."""
    import json
    import subprocess

    proc = subprocess.run(["nft", "-j", "-a", "list", "table", "ip", table], capture_output=True, text=True)
    if proc.returncode != 0:
        return []  # no table yet
    out = []
    for item in json.loads(proc.stdout).get("nftables", []):
        rule = item.get("rule")
        if rule and (comment is None or rule.get("comment") == comment):
            out.append((rule["chain"], rule["handle"], rule.get("comment", "")))
    return out


def delete_tagged(table: str, comment: str) -> None:
    """Delete every rule with `comment`; retried when another process changed the table meanwhile."""
    for _ in range(5):
        found = rules_tagged(table, comment)
        if not found:
            return
        script = "".join(f"delete rule ip {table} {chain} handle {handle}\n" for chain, handle, _ in found)
        if nft(script, check=False).returncode == 0:
            return
    raise BerthError(f"could not remove the nftables rules {comment!r} of table {table}")


def _sysctl(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{path}") as f:
            if f.read().strip() == value:
                return
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except OSError as exc:
        raise BerthError(f"cannot set {path.replace('/', '.')}={value}: {exc.strerror}") from None


def _netlink():
    """pyroute2's IPRoute and NetlinkError, without the rest of pyroute2.

    `import pyroute2` runs a package __init__ that loads every pyroute2 API
    (IPDB, NDB, conntrack ...), ~40 ms more than the IPRoute modules alone,
    on every container start. So unless pyroute2 is already imported, its
    package module is entered lazily: submodules import as usual, and the
    first use of any other package attribute runs the real __init__ then.
    """
    import importlib
    import importlib.util
    import sys

    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        package = importlib.util.module_from_spec(spec)

        def complete(name: str):
            if importlib.util.find_spec(f"pyroute2.{name}") is not None:
                return importlib.import_module(f"pyroute2.{name}")
            del package.__dict__["__getattr__"]
            spec.loader.exec_module(package)
            return getattr(package, name)

        package.__getattr__ = complete
        sys.modules["pyroute2"] = package
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    return IPRoute, NetlinkError


def _in_netns(netns_path: str, configure) -> None:
    """configure(ipr) on a netlink socket opened inside the namespace at `netns_path`.

    A netlink socket stays in the namespace it was opened in, and setns of a
    network namespace moves only the calling thread: a short-lived thread
    does it, where pyroute2's own netns support forks a helper (and runs
    ldconfig) each time.
    """
    import threading

    from berth.core.runtime import syscalls

    IPRoute, _ = _netlink()

    failure: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET)
            finally:
                os.close(fd)
            with IPRoute() as ipr:
                configure(ipr)
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="berth-netns")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _gone(path: str, within: float) -> bool:
    """Whether `path` disappears within `within` seconds. The kernel takes a
    few ms to tear down a dead container's namespace and with it the veth
    pair; waiting for that is cheaper than loading netlink to delete it.
    (A live container's pair, as at `network disconnect`, costs the wait.)"""
    deadline = time.monotonic() + within
    while os.path.lexists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


class BridgeDriver(NetworkDriver):
    """Docker's default network model on one host bridge per network."""

    name = "bridge"
    namespace = "new"
    user_creatable = True
    publishes_ports = True

    def preload(self) -> None:
        _netlink()

    @classmethod
    def validate_options(cls, options):
        """Docker's bridge options: the device's name, its MTU, whether the
        subnet is masqueraded going out."""
        out = {}
        for key, value in options.items():
            value = str(value)
            if key == NAME:
                if not _IFNAME.match(value):
                    raise InvalidArgument(f"invalid bridge name {value!r}: 1 to 15 letters, digits, '_', '.' or '-'")
            elif key == MTU:
                if not value.isdigit() or not 68 <= int(value) <= 65535:
                    raise InvalidArgument(f"invalid MTU number: {value}")
            elif key in (MASQUERADE, DEFAULT_BRIDGE):
                if value not in _BOOLS:
                    raise InvalidArgument(f'strconv.ParseBool: parsing "{value}": invalid syntax')
                value = _BOOLS[value]
            else:
                raise InvalidArgument(f"network driver bridge does not know option {key!r} (it takes {NAME}, "
                                      f"{MTU}, {MASQUERADE})")
            out[key] = value
        return out

    @classmethod
    def device_name(cls, network_id, options):
        return options.get(NAME) or f"br-{network_id[:12]}"

    @classmethod
    def unsupported_reason(cls) -> str | None:
        import shutil

        if shutil.which("nft") is None:
            return "the nft command (nftables) is not installed"
        import importlib.util

        if importlib.util.find_spec("pyroute2") is None:  # found, not imported: that costs ~100 ms
            return "the pyroute2 library is not installed"
        return None

    # -- networks ------------------------------------------------------------------

    def create_network(self, net: NetworkSpec) -> None:
        IPRoute, NetlinkError = _netlink()

        subnet = ipaddress.ip_network(net.subnet)
        with IPRoute() as ipr:
            if _lookup(ipr, net.bridge) is None:
                try:
                    ipr.link("add", ifname=net.bridge, kind="bridge")
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise BerthError(f"cannot create bridge {net.bridge}: {exc}") from None
            index = _lookup(ipr, net.bridge)
            # A fixed MAC: a bridge left to itself takes its lowest port's, so a container's leaving
            # changed it and the others' ARP entries for the gateway (DNS, NAT) went stale for minutes.
            ipr.link("set", index=index, address=_gateway_mac(net.gateway))
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
            if net.gateway not in have:
                try:
                    ipr.addr("add", index=index, address=net.gateway, prefixlen=subnet.prefixlen)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise BerthError(f"cannot give {net.bridge} address {net.gateway}: {exc}") from None
            if net.options.get(MTU):
                ipr.link("set", index=index, mtu=int(net.options[MTU]))
            ipr.link("set", index=index, state="up")
        _sysctl(f"net/ipv4/conf/{net.bridge}/route_localnet", "1")
        if not net.internal:
            _sysctl("net/ipv4/ip_forward", "1")
        tag = f"net:{net.bridge}"
        if rules_tagged(net.table, tag):
            return
        br, c = net.bridge, f'comment "{tag}"'
        rules = [
            f'add rule ip {net.table} postrouting oifname "{br}" ip saddr 127.0.0.0/8 masquerade {c}',
            f'add rule ip {net.table} postrouting oifname "{br}" ip saddr {subnet} ct status dnat masquerade {c}',
            f'add rule ip {net.table} guard iifname "{br}" ip daddr 127.0.0.0/8 drop {c}',
        ]
        if net.internal:
            rules += [f'add rule ip {net.table} forward iifname "{br}" oifname != "{br}" drop {c}',
                      f'add rule ip {net.table} forward oifname "{br}" iifname != "{br}" drop {c}']
        else:
            if net.options.get(MASQUERADE, "true") == "true":
                rules.append(f'add rule ip {net.table} postrouting ip saddr {subnet} oifname != "{br}" masquerade {c}')
            rules += [f'add rule ip {net.table} forward iifname "{br}" accept {c}',
                      f'add rule ip {net.table} forward oifname "{br}" accept {c}']
        nft(CHAINS.format(table=net.table) + "\n".join(rules) + "\n")

    def delete_network(self, net: NetworkSpec) -> None:
        IPRoute, NetlinkError = _netlink()

        delete_tagged(net.table, f"net:{net.bridge}")
        if not net.bridge:
            return
        with IPRoute() as ipr:
            index = _lookup(ipr, net.bridge)
            if index is not None:
                try:
                    ipr.link("del", index=index)
                except NetlinkError as exc:
                    if exc.code != errno.ENODEV:
                        raise BerthError(f"cannot delete bridge {net.bridge}: {exc}") from None

    def cleanup(self, table: str) -> None:
        """Drop the installation's whole nftables table (reset, tests)."""
        nft(f"delete table ip {table}\n", check=False)

    # -- containers -----------------------------------------------------------------

    def attach(self, net: NetworkSpec, endpoint: Endpoint, pid: int) -> None:
        IPRoute, NetlinkError = _netlink()

        netns = f"/proc/{pid}/ns/net"
        try:
            with IPRoute() as ipr:
                bridge = _lookup(ipr, net.bridge)
                if bridge is None:
                    raise BerthError(f"bridge {net.bridge} of network {net.name} does not exist")
                # the peer is born inside the container's namespace with its final name and MAC
                ipr.link("add", ifname=endpoint.host_ifname, kind="veth",
                         peer={"ifname": endpoint.ifname, "net_ns_fd": netns, "address": endpoint.mac})
                index = _lookup(ipr, endpoint.host_ifname)
                ipr.link("set", index=index, master=bridge)
                if net.options.get(MTU):
                    ipr.link("set", index=index, mtu=int(net.options[MTU]))
                ipr.link("set", index=index, state="up")
            with open(f"/sys/class/net/{endpoint.host_ifname}/brport/hairpin_mode", "w") as f:
                f.write("1")  # a container may reach its own published port

            def configure(ns) -> None:
                inner = _lookup(ns, endpoint.ifname)
                if net.options.get(MTU):
                    ns.link("set", index=inner, mtu=int(net.options[MTU]))
                ns.addr("add", index=inner, address=endpoint.address, prefixlen=endpoint.prefixlen)
                ns.link("set", index=inner, state="up")
                if endpoint.default_route:
                    ns.route("add", dst="0.0.0.0/0", gateway=endpoint.gateway)

            _in_netns(netns, configure)
        except NetlinkError as exc:
            raise BerthError(f"cannot connect the container to network {net.name}: {exc}") from None
        except OSError as exc:
            raise BerthError(f"cannot connect the container to network {net.name}: {exc}") from None

    def detach(self, net: NetworkSpec, endpoint: Endpoint, attached: dict | None = None) -> None:
        if _gone(f"/sys/class/net/{endpoint.host_ifname}", within=0.05):
            return  # the kernel removed the pair with the container's namespace
        IPRoute, NetlinkError = _netlink()

        with IPRoute() as ipr:
            index = _lookup(ipr, endpoint.host_ifname)
            if index is None:
                return
            try:
                ipr.link("del", index=index)  # deletes the peer too
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise BerthError(f"cannot delete {endpoint.host_ifname}: {exc}") from None

    def publish(self, net: NetworkSpec, endpoint: Endpoint, ports: list[PortMapping]) -> None:
        c = f'comment "ctr:{endpoint.container_id}"'
        rules = []
        for p in ports:
            match = f"meta l4proto {p.proto} th dport {p.host_port}"
            target = f"dnat to {endpoint.address}:{p.container_port}"
            if not p.host_ip:
                where = "fib daddr type local"
                chains = ("prerouting", "output")
            else:
                where = f"ip daddr {p.host_ip}"
                loopback = ipaddress.ip_address(p.host_ip).is_loopback
                chains = ("output",) if loopback else ("prerouting", "output")
            for chain in chains:
                rules.append(f"add rule ip {net.table} {chain} {where} {match} {target} {c}")
        if rules:
            nft(CHAINS.format(table=net.table) + "\n".join(rules) + "\n")

    def unpublish(self, net: NetworkSpec, endpoint: Endpoint) -> None:
        delete_tagged(net.table, f"ctr:{endpoint.container_id}")


def _gateway_mac(gateway: str) -> str:
    """The bridge's own MAC: 02:42 and the gateway's four bytes (as containers' are of their addresses)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(gateway).packed)
