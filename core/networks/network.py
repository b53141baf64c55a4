"""Networks: the predefined bridge/host/none, user networks, IPAM, ports.

The store is the truth. A network is a row of `networks`; a running
container's address on it is a row of `ip_allocations` and each published
host port a row of `port_allocations`, all PRIMARY KEYs, taken inside
`store.transaction()` (BEGIN IMMEDIATE): two berth processes can never hand
out one address or one port. The drivers (plugin kind "network") only make
the host match the store: bridge devices, veths, nftables rules.

Which networks a container is on: NetworkSettings.Networks (its keys) of the
container, kept by this service; before the first start, its
HostConfig.NetworkMode. Names on user networks resolve through /etc/hosts
entries (Docker runs an embedded DNS server instead): each running
container's hosts file is rewritten in place whenever a peer joins or leaves.

Crash safety: every address is in the store before any device exists, and a
marker file runroot/network/<container id> names the process that is
setting it up (then the container's PID 1). An allocation whose container is
not running and whose marker process is gone is stale; `recover()` (run by
every attach and every `network` command) removes its devices, rules and
rows.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from types import MappingProxyType

from berth.core import driverkit
from berth.core.drivers import Endpoint, NetworkSpec, PortMapping
from berth.core.errors import BerthError, Conflict, FailedPrecondition, InvalidArgument, NotFound, Unsupported
from berth.core.networks import links as links_mod
from berth.core.networks import ports as ports_mod
from berth.core.plumbing import atomic
from berth.core.plumbing.ids import random_hex
from berth.core.plumbing.store import dumps, loads
from berth.core.plumbing.units import now_iso
from berth.core.runtime.proc import start_time as proc_start

PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Auto subnets of user networks: 10.214.0.0/24, 10.214.1.0/24 ... (clear of Docker's 172.17+ and Podman's 10.88/10.89)
AUTO_POOL = ipaddress.ip_network("10.214.0.0/16")
LOCALHOST_LINES = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
]
_LIVE = ("running", "paused", "restarting")


def mac_for(address: str) -> str:
    """Docker's MAC: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)


def veth_name(container_id: str, network_id: str) -> str:
    """Host end of a container's veth: stable, so any process can find and remove it."""
    from berth.core.oci.content import sha256_bytes

    return "veth" + sha256_bytes(f"{container_id}/{network_id}".encode())[7:14]


def table_name(bridge: str) -> str:
    """The nftables table of an installation, named after its default bridge."""
    return "berth" if bridge == "berth0" else "berth_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


class NetworkService:
    """`engine.networks`: networks, container wiring, ports, links."""

    def __init__(self, engine):
        self.engine = engine
        self._drivers: dict[str, object] = {}
        self._recovered = False
        self._warned_subnet = False

    @property
    def store(self):
        return self.engine.store

    @property
    def table(self) -> str:
        return table_name(self.engine.config.get("network.bridge"))

    @property
    def resolver(self):
        """Names through DNS on user-defined networks (berth.core.networks.dns)."""
        if "_resolver" not in self.__dict__:
            from berth.core.networks.dns import Resolver

            self._resolver = Resolver(self.engine)
        return self._resolver

    def driver(self, name: str):
        """The driver `name`, built on its own directory <root>/networks/<name>."""
        if name not in self._drivers:
            cls = self.engine.driver("network", name)
            home = self.engine.root / "networks" / name
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._drivers[name] = cls(home)
        return self._drivers[name]

    # -- networks ------------------------------------------------------------------

    def _ensure_predefined(self) -> None:
        bridge_row = self.store.one("SELECT * FROM networks WHERE name = 'bridge'")
        if bridge_row and self.store.one("SELECT 1 FROM networks WHERE name = 'none'"):
            self._follow_configuration(bridge_row)
            return
        subnet, gateway = self._configured_subnet()
        bridge = self.engine.config.get("network.bridge")
        rows = [("bridge", "bridge", subnet, gateway, {"bridge": bridge, "opts": _default_bridge(bridge)}),
                ("host", "host", None, None, {"opts": {}}), ("none", "none", None, None, {"opts": {}})]
        with self.store.transaction() as db:
            for name, driver, sub, gw, options in rows:
                db.execute("INSERT OR IGNORE INTO networks (id, name, driver, subnet, gateway, options, labels, created)"
                           " VALUES (?,?,?,?,?,?,?,?)",
                           (random_hex(32), name, driver, sub, gw, dumps(options), "{}", now_iso()))

    def _configured_subnet(self) -> tuple[str, str]:
        """network.subnet and network.gateway of the configuration, checked."""
        cfg = self.engine.config
        subnet, gateway = cfg.get("network.subnet"), cfg.get("network.gateway")
        try:
            if not isinstance(subnet, str) or not isinstance(gateway, str):
                raise ValueError("must be strings")
            net = ipaddress.ip_network(subnet, strict=False)
            gw = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise InvalidArgument(f"invalid network.subnet {subnet!r} or network.gateway {gateway!r} in the "
                                  f"configuration: {exc}") from None
        if net.version != 4 or net.prefixlen > 30:
            raise InvalidArgument(f"invalid network.subnet {subnet!r} in the configuration: an IPv4 subnet of at "
                                  "least 4 addresses (a prefix of /30 or shorter) is needed")
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid network.gateway {gateway!r} in the configuration: not an address "
                                  f"of network.subnet {net}")
        return str(net), str(gw)

    def _follow_configuration(self, row) -> None:
        """A changed network.subnet or network.gateway applies to the default bridge network
        while no container is on it; otherwise one WARNING line says why not (once per command)."""
        subnet, gateway = self._configured_subnet()
        if (row["subnet"], row["gateway"]) == (subnet, gateway):
            return
        with self.store.transaction() as db:
            users = db.execute("SELECT COUNT(DISTINCT container_id) FROM ip_allocations WHERE network_id = ?",
                               (row["id"],)).fetchone()[0]
            if not users:
                db.execute("UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?", (subnet, gateway, row["id"]))
        if users:
            if not self._warned_subnet:
                self._warned_subnet = True
                import sys

                sys.stderr.write(f"WARNING: network.subnet {subnet} and network.gateway {gateway} of the "
                                 f"configuration are not applied yet: {users} running container(s) use the bridge "
                                 f"network on {row['subnet']}; they apply once none does\n")
            return
        with self.engine.lock("network"):  # the old bridge device goes; the next attach makes the new one
            self._ready_marker(row["id"]).unlink(missing_ok=True)
            self.driver(row["driver"]).delete_network(self.spec(row))

    def _row(self, ref: str):
        self._ensure_predefined()
        row = self.store.one("SELECT * FROM networks WHERE name = ? OR id = ?", (ref, ref))
        if row is None and ref and re.fullmatch(r"[0-9a-f]+", ref):
            rows = self.store.all("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise NotFound(f"network {ref} is ambiguous ({len(rows)} matches found based on ID prefix)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return row

    def spec(self, row) -> NetworkSpec:
        options = loads(row["options"]) or {}
        return NetworkSpec(id=row["id"], name=row["name"], driver=row["driver"], subnet=row["subnet"],
                           gateway=row["gateway"], bridge=options.get("bridge", ""), internal=bool(options.get("internal")),
                           table=self.table, options=MappingProxyType(_driver_options(row, options)))

    def create(self, name: str, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict | None = None, options: dict | None = None) -> dict:
        """`network create`: a network of `driver` with a subnet of its own and the
        driver's `options` (-o), which the driver validates; its host device is
        the driver's device_name (the bridge's br-<id12>)."""
        if not NAME_RE.match(name):
            raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        self._ensure_predefined()
        if name in PREDEFINED:
            raise Conflict(f"network with name {name} already exists")
        cls = self.engine.driver("network", driver)
        if not getattr(cls, "user_creatable", False):
            raise Unsupported(f"{driver} network driver cannot create networks; only one {driver} network can exist")
        driver_options = cls.validate_options(dict(options or {}))
        network_id = random_hex(32)
        device = cls.device_name(network_id, driver_options)
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"network with name {name} already exists")
            taken = [ipaddress.ip_network(r["subnet"]) for r in
                     db.execute("SELECT subnet FROM networks WHERE subnet IS NOT NULL").fetchall()]
            if subnet:
                try:
                    net = ipaddress.ip_network(subnet, strict=False)
                except ValueError:
                    raise InvalidArgument(f"invalid subnet {subnet}: invalid CIDR address") from None
                if net.version != 4:
                    raise Unsupported("IPv6 networks are not supported")
                if net.prefixlen > 30:
                    raise InvalidArgument(f"invalid subnet {subnet}: too small for containers")
                if any(net.overlaps(t) for t in taken):
                    raise Conflict("Pool overlaps with other one on this address space")
            else:
                net = next((n for n in AUTO_POOL.subnets(new_prefix=24)
                            if not any(n.overlaps(t) for t in taken) and not driverkit.host_routes_overlap(n)), None)
                if net is None:
                    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults "
                                   "to assign to the network")
            if gateway:
                try:
                    gw = ipaddress.ip_address(gateway)
                except ValueError:
                    raise InvalidArgument(f"invalid gateway address {gateway}") from None
                if gw not in net or gw in (net.network_address, net.broadcast_address):
                    raise InvalidArgument(f"no matching subnet for gateway {gateway}")
            else:
                gw = net.network_address + 1
            if device and any((loads(r["options"]) or {}).get("bridge") == device
                              for r in db.execute("SELECT options FROM networks").fetchall()):
                raise Conflict(f"device {device} is already in use by another network")
            options = {"bridge": device, "opts": driver_options}
            if internal:
                options["internal"] = True
            db.execute("INSERT INTO networks (id, name, driver, subnet, gateway, options, labels, created)"
                       " VALUES (?,?,?,?,?,?,?,?)", (network_id, name, driver, str(net), str(gw), dumps(options),
                                                     dumps(labels or {}), now_iso()))
        info = self.inspect(network_id)
        self.engine.emit("network", "create", network_id, {"name": name, "type": driver})
        self.engine.hook("network_created", network=info)
        return info

    def list(self) -> list[dict]:
        self._ensure_predefined()
        return [self.inspect(r["id"]) for r in self.store.all("SELECT id FROM networks ORDER BY name")]

    def inspect(self, ref: str) -> dict:
        row = self._row(ref)
        options = loads(row["options"]) or {}
        containers = {}
        for a in self.store.all("SELECT * FROM ip_allocations WHERE network_id = ?", (row["id"],)):
            c = self.store.one("SELECT name FROM containers WHERE id = ?", (a["container_id"],))
            containers[a["container_id"]] = {
                "Name": c["name"] if c else "", "EndpointID": _endpoint_id(a["container_id"], row["id"]),
                "MacAddress": mac_for(a["address"]),
                "IPv4Address": f"{a['address']}/{ipaddress.ip_network(row['subnet']).prefixlen}", "IPv6Address": ""}
        config = [{"Subnet": row["subnet"], "Gateway": row["gateway"]}] if row["subnet"] else []
        return {
            "Name": row["name"], "Id": row["id"], "Created": row["created"], "Scope": "local",
            "Driver": row["driver"], "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": bool(options.get("internal")), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": _driver_options(row, options), "Labels": loads(row["labels"]) or {},
        }

    def remove(self, ref: str) -> str:
        """`network rm`: refused for the predefined networks and while containers use it."""
        self.recover()
        row = self._row(ref)
        if row["name"] in PREDEFINED:
            raise FailedPrecondition(f"{row['name']} is a pre-defined network and cannot be removed")
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM ip_allocations WHERE network_id = ?", (row["id"],)).fetchone():
                raise FailedPrecondition(f"error while removing network: network {row['name']} id {row['id']} "
                                         "has active endpoints")
            db.execute("DELETE FROM networks WHERE id = ?", (row["id"],))
        with self.engine.lock("network"):
            self._ready_marker(row["id"]).unlink(missing_ok=True)
            self.driver(row["driver"]).delete_network(self.spec(row))
        self.engine.emit("network", "destroy", row["id"], {"name": row["name"], "type": row["driver"]})
        self.engine.hook("network_removed", name=row["name"])
        return row["name"]

    def users(self, network_name: str) -> list[str]:
        """IDs of containers connected to the network (running or not)."""
        out = []
        for r in self.store.all("SELECT id, host_config, network FROM containers"):
            if network_name in self._member_names(loads(r["host_config"]) or {}, loads(r["network"]) or {}):
                out.append(r["id"])
        return out

    def prune(self, accept=None) -> list[str]:
        """`network prune`: remove user networks no container is connected to (that
        `accept(created, labels)`, if given: prune --filter)."""
        self.recover()
        removed = []
        for row in self.store.all("SELECT id, name, created, labels FROM networks ORDER BY name"):
            if row["name"] in PREDEFINED or self.users(row["name"]):
                continue
            if accept is not None and not accept(row["created"], loads(row["labels"])):
                continue
            try:
                removed.append(self.remove(row["id"]))
            except (FailedPrecondition, NotFound):
                pass
        return removed

    def reset(self) -> None:
        """Remove every device and rule of this installation (tests, uninstall).

        Running containers lose their network; their allocations are dropped.
        """
        for row in self.store.all("SELECT * FROM ip_allocations"):
            self._release(row["container_id"])
        self.resolver.stop()
        with self.engine.lock("network"):
            for row in self.store.all("SELECT * FROM networks"):
                self._ready_marker(row["id"]).unlink(missing_ok=True)
                try:
                    self.driver(row["driver"]).delete_network(self.spec(row))
                except BerthError:
                    pass
            for name in sorted({row["driver"] for row in self.store.all("SELECT driver FROM networks")}):
                try:
                    self.driver(name).cleanup(self.table)
                except BerthError:
                    pass

    # -- membership --------------------------------------------------------------

    def _primary_name(self, host_config: dict) -> str:
        mode = host_config.get("NetworkMode") or self.engine.config.get("network.default")
        return "bridge" if mode == "default" else mode

    def _member_names(self, host_config: dict, settings: dict) -> list[str]:
        """The networks a container is connected to, its primary first."""
        primary = self._primary_name(host_config)
        if primary in ("host", "none") or primary.startswith("container:"):
            return [primary]
        names = [primary]
        for name in (settings.get("Networks") or {}):
            if name not in names:
                names.append(name)
        return names

    def _container_row(self, container_id: str):
        row = self.store.one("SELECT * FROM containers WHERE id = ?", (container_id,))
        if row is None:
            raise NotFound(f"No such container: {container_id}")
        return row

    def _find_container(self, ref: str):
        return self._container_row(self.engine.containers.get(ref).id)

    # -- IPAM and ports ------------------------------------------------------------

    def endpoint_settings(self, host_config: dict, endpoint: dict, container_id: str | None = None) -> dict:
        """The NetworkSettings a new container starts with: its --ip,
        --network-alias and --mac-address (EndpointSettings) on its primary
        network, checked as Docker checks them. On a user-defined network the
        container's short ID is an alias too, as Docker 24 lists it (compose
        reads it to know the container is connected)."""
        name = self._primary_name(host_config)
        user_defined = name not in PREDEFINED and not name.startswith("container:") and name != "default"
        if user_defined and container_id:
            endpoint = dict(endpoint)
            endpoint["Aliases"] = list(dict.fromkeys(list(endpoint.get("Aliases") or []) + [container_id[:12]]))
        if not endpoint:
            return {}
        if endpoint.get("Aliases") and not user_defined:
            raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        wanted = (endpoint.get("IPAMConfig") or {}).get("IPv4Address")
        if wanted:
            if not user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            row = self._row(name)
            address = ipaddress.ip_address(wanted)
            net = ipaddress.ip_network(row["subnet"])
            if address not in net or address in (net.network_address, net.broadcast_address):
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {wanted}")
        return {"Networks": {name: dict(endpoint)}}

    def _allocate_addresses(self, container_id: str, host_config: dict, settings: dict) -> list[tuple]:
        """(network row, address) for each bridge-like network, allocating what is missing
        (the address the container asked for with --ip, if it is free)."""
        rows = []
        for name in self._member_names(host_config, settings):
            if name in ("host", "none") or name.startswith("container:"):
                continue
            row = self._row(name)
            if row["subnet"]:
                rows.append(row)
        if not rows:
            return []
        self._write_marker(container_id, os.getpid())
        out = []
        with self.store.transaction() as db:
            for row in rows:
                have = db.execute("SELECT address FROM ip_allocations WHERE network_id = ? AND container_id = ?",
                                  (row["id"], container_id)).fetchone()
                if have:
                    out.append((row, have["address"]))
                    continue
                wanted = ((settings.get("Networks") or {}).get(row["name"]) or {}).get("IPAMConfig") or {}
                address = wanted.get("IPv4Address") or self._free_address(db, row)
                if address == row["gateway"] or db.execute(
                        "SELECT 1 FROM ip_allocations WHERE network_id = ? AND address = ?",
                        (row["id"], address)).fetchone():
                    raise Conflict("Address already in use")
                db.execute("INSERT INTO ip_allocations (network_id, address, container_id) VALUES (?,?,?)",
                           (row["id"], address, container_id))
                out.append((row, address))
        return out

    @staticmethod
    def _free_address(db, row) -> str:
        net = ipaddress.ip_network(row["subnet"])
        used = {r["address"] for r in db.execute("SELECT address FROM ip_allocations WHERE network_id = ?",
                                                 (row["id"],)).fetchall()}
        used.add(row["gateway"])
        for host in net.hosts():
            text = str(host)
            if text not in used:
                return text
        raise Conflict(f"no available IPv4 addresses on this network's address pools: {row['name']} ({row['id']})")

    def _allocate_ports(self, container_id: str, name: str, bindings: dict) -> list[PortMapping]:
        """Take every host port of `bindings` (PortBindings shape) in one transaction."""
        low, high = ports_mod.parse_range(str(self.engine.config.get("network.port_range")))
        out: list[PortMapping] = []
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM port_allocations WHERE container_id = ?", (container_id,)).fetchone():
                return self._ports_of(db, container_id, bindings)
            for key in ports_mod.sorted_keys(bindings):
                cport, proto = ports_mod.split_key(key)
                for b in bindings[key] or []:
                    host_ip = (b.get("HostIp") or "").strip("[]")
                    if host_ip in ("0.0.0.0", "::"):
                        host_ip = ""
                    if host_ip and ipaddress.ip_address(host_ip).version != 4:
                        raise Unsupported(f"IPv6 port publishing is not supported: {host_ip}")
                    wanted = b.get("HostPort") or ""
                    if wanted and "-" not in wanted and int(wanted) != 0:
                        port = int(wanted)
                        if self._port_taken(db, proto, port, host_ip) or not _host_port_free(proto, host_ip, port):
                            raise Conflict(f"driver failed programming external connectivity on endpoint {name} "
                                           f"({_endpoint_id(container_id, 'ports')}): Bind for "
                                           f"{host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
                    else:
                        first, last = ports_mod.parse_range(wanted) if wanted and wanted != "0" else (low, high)
                        port = self._next_port(db, proto, host_ip, first, last)
                    db.execute("INSERT INTO port_allocations (proto, host_port, host_ip, container_id) VALUES (?,?,?,?)",
                               (proto, port, host_ip, container_id))
                    out.append(PortMapping(proto, host_ip, port, cport))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (f"ports/{container_id}", dumps([list(m) for m in out])))
        return out

    @staticmethod
    def _ports_of(db, container_id: str, bindings: dict) -> list[PortMapping]:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (f"ports/{container_id}",)).fetchone()
        return [PortMapping(*m) for m in loads(row["value"])] if row else []

    @staticmethod
    def _port_taken(db, proto: str, port: int, host_ip: str) -> bool:
        return db.execute("SELECT 1 FROM port_allocations WHERE proto = ? AND host_port = ? AND "
                          "(host_ip = ? OR host_ip = '' OR ? = '')", (proto, port, host_ip, host_ip)).fetchone() is not None

    def _next_port(self, db, proto: str, host_ip: str, first: int, last: int) -> int:
        """Docker's portallocator: the next free port after the last one handed out, wrapping."""
        key = f"port_cursor/{proto}"
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        last_given = int(row["value"]) if row else first - 1
        span = last - first + 1
        start = last_given + 1 if first <= last_given + 1 <= last else first
        for i in range(span):
            port = first + (start - first + i) % span
            if not self._port_taken(db, proto, port, host_ip) and _host_port_free(proto, host_ip, port):
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(port)))
                return port
        raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{first}-{last} failed: all ports are allocated")

    # -- containers ------------------------------------------------------------------

    def prepare(self, container_id: str) -> None:
        """preload() the networks `container_id` is connected to."""
        row = self._container_row(container_id)
        self.preload(self._member_names(loads(row["host_config"]) or {}, loads(row["network"]) or {}))

    def preload(self, names: list[str]) -> None:
        """Preload the drivers of the networks `names`, ahead of attach: the
        bridge driver loads its netlink library (~60 ms)."""
        for name in names:
            name = "bridge" if name == "default" else name
            if name in ("host", "none") or name.startswith("container:"):
                continue
            try:
                drv = self.driver(self._row(name)["driver"])
            except BerthError:
                continue  # attach says what is wrong
            if hasattr(drv, "preload"):  # a duck-typed driver may lack it
                drv.preload()

    def attach(self, container, pid: int) -> None:
        """Wire a starting container (its PID 1 waits in a fresh netns).

        Allocates its addresses (if hosts_entries did not already) and its
        published ports, makes each network's host side exist, gives the
        container one interface per network (eth0 routes by default) and
        publishes the ports on its first network. On any failure, everything
        is undone and the error raised (Docker's port-conflict text).
        """
        self.recover()
        row = self._container_row(container.id)
        host_config, config = loads(row["host_config"]) or {}, loads(row["config"]) or {}
        settings = loads(row["network"]) or {}
        try:
            allocations = self._allocate_addresses(container.id, host_config, settings)
            self._write_marker(container.id, pid)
            bindings = dict(host_config.get("PortBindings") or {})
            if host_config.get("PublishAllPorts"):
                bindings = ports_mod.publish_all(config.get("ExposedPorts") or {}, bindings)
            mappings = self._allocate_ports(container.id, row["name"], bindings) if bindings and allocations else []
            endpoints = []
            with self.engine.lock("network"):
                for index, (net_row, address) in enumerate(allocations):
                    spec = self.spec(net_row)
                    mac = ((settings.get("Networks") or {}).get(net_row["name"]) or {}).get("MacAddress")
                    ep = self._endpoint(container.id, net_row, address, index, mac)
                    drv = self.driver(net_row["driver"])
                    self._ensure_network(drv, spec)
                    self._keep_attached(container.id, net_row["id"], drv.attach(spec, ep, pid))
                    endpoints.append((net_row, spec, ep))
                if mappings and endpoints:
                    net_row, spec, ep = endpoints[0]
                    drv = self.driver(net_row["driver"])
                    if not drv.publishes_ports:  # created before the driver said so: refused at create now
                        raise InvalidArgument(_cannot_publish(net_row))
                    drv.publish(spec, ep, mappings)
        except BaseException:
            self._release(container.id)
            raise
        self._write_settings(container.id, pid, endpoints, mappings, config)
        for net_row, _, _ in endpoints:
            self.engine.emit("network", "connect", net_row["id"],
                             {"container": container.id, "name": net_row["name"], "type": net_row["driver"]})
        self._refresh_peers(container.id, [r["name"] for r, _, _ in endpoints])

    def detach(self, container) -> None:
        """The container stopped: remove its interfaces and rules, free its addresses and ports. Idempotent."""
        names = self._release(container.id)
        self._clear_settings(container.id)
        self._refresh_peers(container.id, names)

    def _ensure_network(self, drv, spec: NetworkSpec) -> None:
        """create_network once per boot (its checks cost a start ~6 ms): a
        marker in the run directory says it was done, as long as the bridge
        device it made is still there. Caller holds the "network" lock."""
        marker = self._ready_marker(spec.id)
        if marker.exists() and (not spec.bridge or os.path.lexists(f"/sys/class/net/{spec.bridge}")):
            return
        drv.create_network(spec)
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker.touch()

    def _ready_marker(self, network_id: str) -> Path:
        return self.engine.runroot / "network" / f"ready-{network_id}"

    def _release(self, container_id: str) -> list[str]:
        rows = self.store.all("SELECT * FROM ip_allocations WHERE container_id = ? ORDER BY rowid", (container_id,))
        # publish() only ever follows a port allocation: without one there are no rules to look for
        published = self.store.one("SELECT 1 FROM port_allocations WHERE container_id = ?", (container_id,))
        names = []
        with self.engine.lock("network"):
            for index, a in enumerate(rows):
                net_row = self.store.one("SELECT * FROM networks WHERE id = ?", (a["network_id"],))
                if net_row is None:
                    continue
                names.append(net_row["name"])
                spec, ep = self.spec(net_row), self._endpoint(container_id, net_row, a["address"], index)
                drv = self.driver(net_row["driver"])
                try:
                    if published:
                        drv.unpublish(spec, ep)
                    drv.detach(spec, ep, self._attached(container_id, net_row["id"]))
                except BerthError:
                    pass
                self.engine.emit("network", "disconnect", net_row["id"],
                                 {"container": container_id, "name": net_row["name"], "type": net_row["driver"]})
        with self.store.transaction() as db:
            db.execute("DELETE FROM ip_allocations WHERE container_id = ?", (container_id,))
            db.execute("DELETE FROM port_allocations WHERE container_id = ?", (container_id,))
            db.execute("DELETE FROM meta WHERE key = ?", (f"ports/{container_id}",))
            db.execute("DELETE FROM meta WHERE key LIKE ?", (f"attached/{container_id}/%",))
        self._marker(container_id).unlink(missing_ok=True)
        return names

    def _keep_attached(self, container_id: str, network_id: str, result: dict | None) -> None:
        """Keep what the driver's attach returned, for its detach (any process's)."""
        if result is not None:
            with self.store.transaction() as db:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           (f"attached/{container_id}/{network_id}", dumps(result)))

    def _attached(self, container_id: str, network_id: str) -> dict | None:
        """What the driver's attach returned for the container on that network, if anything."""
        row = self.store.one("SELECT value FROM meta WHERE key = ?", (f"attached/{container_id}/{network_id}",))
        return loads(row["value"]) if row else None

    def _endpoint(self, container_id: str, net_row, address: str, index: int, mac: str | None = None) -> Endpoint:
        net = ipaddress.ip_network(net_row["subnet"])
        return Endpoint(container_id=container_id, network_id=net_row["id"], address=address,
                        prefixlen=net.prefixlen, gateway=net_row["gateway"], mac=mac or mac_for(address),
                        host_ifname=veth_name(container_id, net_row["id"]), ifname=f"eth{index}",
                        default_route=index == 0)

    # -- NetworkSettings ---------------------------------------------------------------

    def _write_settings(self, container_id, pid, endpoints, mappings, config) -> None:
        ports: dict = {key: None for key in ports_mod.sorted_keys(config.get("ExposedPorts") or {})}
        for m in mappings:
            ports.setdefault(ports_mod.port_key(m.container_port, m.proto), None)
            key = ports_mod.port_key(m.container_port, m.proto)
            ports[key] = (ports[key] or []) + [{"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)}]
        with self.store.transaction() as db:
            row = db.execute("SELECT network FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                return
            settings = loads(row["network"]) or {}
            networks = settings.get("Networks") or {}
            settings.update(SandboxID=container_id, SandboxKey=f"/proc/{pid}/ns/net", Ports=ports, Bridge="",
                            HairpinMode=False, Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
            for net_row, spec, ep in endpoints:
                entry = dict(networks.get(net_row["name"]) or {})
                asked = {k: entry[k] for k in ("IPAMConfig", "Aliases") if entry.get(k)}  # --ip, --network-alias
                entry.update(_endpoint_settings(net_row, ep), **asked)
                _add_dns_names(db, container_id, net_row["name"], entry)
                networks[net_row["name"]] = entry
                if net_row["name"] == "bridge":  # Docker fills the top level for the default bridge only
                    settings.update(Bridge=spec.bridge, Gateway=ep.gateway, IPAddress=ep.address,
                                    IPPrefixLen=ep.prefixlen, MacAddress=ep.mac)
            settings["Networks"] = networks
            db.execute("UPDATE containers SET network = ? WHERE id = ?", (dumps(settings), container_id))

    def _clear_settings(self, container_id: str) -> None:
        with self.store.transaction() as db:
            row = db.execute("SELECT network FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                return
            settings = loads(row["network"]) or {}
            if not settings:
                return
            settings.update(SandboxKey="", Ports={}, Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
            for entry in (settings.get("Networks") or {}).values():
                entry.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0, MacAddress="")
            db.execute("UPDATE containers SET network = ? WHERE id = ?", (dumps(settings), container_id))

    def port_lines(self, ref: str, port: str | None = None) -> list[str]:
        """`berth port`: "80/tcp -> 0.0.0.0:8080" lines, or "0.0.0.0:8080" for one port."""
        row = self._find_container(ref)
        published = (loads(row["network"]) or {}).get("Ports") or {}
        if port is None:
            return [f"{key} -> {b['HostIp']}:{b['HostPort']}" for key in ports_mod.sorted_keys(published)
                    for b in published[key] or []]
        number, _, proto = port.partition("/")
        key = ports_mod.port_key(int(number) if number.isdigit() else number, proto or "tcp")
        found = published.get(key) or []
        if not found:
            raise NotFound(f"No public port '{key}' published for {row['name']}")
        return [f"{b['HostIp']}:{b['HostPort']}" for b in found]

    # -- /etc files and links ------------------------------------------------------------

    def _address_of(self, container_id: str) -> str:
        """The container's address on its first network (joining containers: the target's)."""
        row = self.store.one("SELECT address FROM ip_allocations WHERE container_id = ? ORDER BY rowid",
                             (container_id,))
        return row["address"] if row else ""

    def hosts_entries(self, container) -> list[str]:
        """/etc/hosts lines after the localhost ones: own address and hostname,
        links (alias, hostname, name) and peers on shared user networks.

        Allocates the container's addresses now if needed (they are written
        into the file before the process runs; attach reuses them).
        """
        row = self._container_row(container.id)
        host_config, config = loads(row["host_config"]) or {}, loads(row["config"]) or {}
        hostname = config.get("Hostname") or container.id[:12]
        mode = self._primary_name(host_config)
        lines = []
        if mode.startswith("container:"):
            target = self._find_container(mode.split(":", 1)[1])
            address = self._address_of(target["id"])
            return [f"{address}\t{hostname}"] if address else []
        allocations = self._allocate_addresses(container.id, host_config, loads(row["network"]) or {})
        if allocations:
            lines.append(f"{allocations[0][1]}\t{hostname}")
        for name, alias in self._links(host_config):
            linked = self._linked(row, name, alias)
            address = self._address_of(linked["id"])
            if address:
                other_host = (loads(linked["config"]) or {}).get("Hostname") or linked["id"][:12]
                lines.append(f"{address}\t" + " ".join(dict.fromkeys([alias, other_host, linked["name"]])))
        for net_row, _ in allocations:
            if net_row["name"] in PREDEFINED:
                continue
            for peer in self.store.all("SELECT a.address, c.id, c.name, c.network FROM ip_allocations a JOIN "
                                       "containers c ON c.id = a.container_id WHERE a.network_id = ? AND "
                                       "a.container_id != ? ORDER BY a.rowid", (net_row["id"], container.id)):
                aliases = (((loads(peer["network"]) or {}).get("Networks") or {}).get(net_row["name"]) or {}).get(
                    "Aliases") or []
                lines.append(f"{peer['address']}\t" + " ".join(dict.fromkeys([peer["name"], peer["id"][:12],
                                                                              *aliases])))
        return list(dict.fromkeys(lines))

    def resolv_conf(self, container) -> str:
        """The host's resolv.conf minus loopback name servers (as Docker), or
        the container's --dns/--dns-search/--dns-option. No fallback servers:
        berth never adds a resolver the host does not use."""
        row = self._container_row(container.id)
        host_text = host_resolv_text()
        host_config = loads(row["host_config"]) or {}
        if not host_config.get("Dns"):  # on a user-defined network, the resolver answers (Docker's 127.0.0.11)
            server = self.resolver.nameserver(self._member_names(host_config, loads(row["network"]) or {}))
            if server:
                return resolv_text(host_text, dict(host_config, Dns=[server]), ndots_zero=True)
        return resolv_text(host_text, host_config)

    @staticmethod
    def _links(host_config: dict) -> list[tuple[str, str]]:
        """HostConfig.Links ("/db:/web/alias" as Docker stores them, or "db:alias") -> (name, alias)."""
        out = []
        for link in host_config.get("Links") or []:
            name, _, target = link.partition(":")
            alias = target.rsplit("/", 1)[-1] if target else ""
            out.append(links_mod.parse_link(f"{name.lstrip('/')}:{alias}" if alias else name))
        return out

    def _linked(self, row, name: str, alias: str):
        try:
            linked = self._find_container(name)
        except NotFound:
            raise NotFound(f"could not get container for {name}") from None
        state = loads(linked["state"]) or {}
        if state.get("Status") not in _LIVE:
            raise FailedPrecondition(f"Cannot link to a non running container: /{linked['name']} AS "
                                     f"/{row['name']}/{alias}")
        return linked

    def link_env(self, container) -> list[str]:
        """Environment of the container's `--link`s (moby's links.go); raises for a
        missing or stopped linked container."""
        row = self._container_row(container.id)
        env = []
        for name, alias in self._links(loads(row["host_config"]) or {}):
            linked = self._linked(row, name, alias)
            cfg = loads(linked["config"]) or {}
            env += links_mod.link_env(f"/{row['name']}/{alias}", self._address_of(linked["id"]),
                                      list(cfg.get("ExposedPorts") or {}), cfg.get("Env") or [])
        return env

    def apply_create_options(self, config: dict, host_config: dict, *, publish=(), publish_all: bool = False,
                             expose=(), links=()) -> None:
        """Fill Config.ExposedPorts and HostConfig.PortBindings/PublishAllPorts/Links
        from `-p`, `-P`, `--expose`, `--link` (validated, Docker's errors)."""
        exposed, bindings = ports_mod.parse_publish_specs(list(publish))
        all_exposed = dict(config.get("ExposedPorts") or {})
        all_exposed.update(ports_mod.parse_expose(list(expose)))
        all_exposed.update(exposed)
        if all_exposed:
            config["ExposedPorts"] = all_exposed
        host_config["PortBindings"] = bindings
        host_config["PublishAllPorts"] = bool(publish_all)
        parsed = [links_mod.parse_link(l) for l in links]
        mode = host_config.get("NetworkMode") or ""
        if mode and mode not in ("host", "none", "default") and not mode.startswith("container:"):
            row = self._row(mode)  # "network NAME not found", as Docker at create
            if (bindings or publish_all) and not self.engine.driver("network", row["driver"]).publishes_ports:
                raise InvalidArgument(_cannot_publish(row))
        if parsed and (mode in ("host", "none") or mode.startswith("container:")):
            raise InvalidArgument(f"conflicting options: links and the {mode} network mode")
        host_config["Links"] = [f"{n}:{a}" for n, a in parsed] or None

    # -- connect / disconnect --------------------------------------------------------------

    def connect(self, network_ref: str, container_ref: str, aliases: list[str] = ()) -> None:
        """`network connect [--alias A]`: join a user network now (running) or at next start."""
        net_row = self._row(network_ref)
        if aliases and net_row["name"] in PREDEFINED:
            raise InvalidArgument("network-scoped alias is supported only for containers in user defined networks")
        row = self._find_container(container_ref)
        host_config = loads(row["host_config"]) or {}
        mode = self._primary_name(host_config)
        settings = loads(row["network"]) or {}
        # Disconnected from every network (NetworkMode "none" but a Networks mapping, unlike
        # --network none): Docker connects it again, the network becoming its primary one.
        rejoins = mode == "none" and "Networks" in settings and "none" not in settings["Networks"]
        if net_row["name"] in ("host", "none") or (mode in ("host", "none") and not rejoins) or \
                mode.startswith("container:"):
            raise FailedPrecondition("container cannot be disconnected from host network or connected to host network"
                                     if "host" in (mode, net_row["name"]) else
                                     "container sharing network namespace with another container or host cannot be "
                                     "connected to any other network")
        if net_row["name"] in self._member_names(host_config, settings):
            raise Conflict(f"endpoint with name {row['name']} already exists in network {net_row['name']}")
        with self.store.transaction() as db:
            current = loads(db.execute("SELECT network FROM containers WHERE id = ?", (row["id"],)).fetchone()[0]) or {}
            networks = current.get("Networks") or {}
            if rejoins:
                host_config["NetworkMode"] = net_row["name"]
                db.execute("UPDATE containers SET host_config = ? WHERE id = ?", (dumps(host_config), row["id"]))
            networks.setdefault(self._primary_name(host_config), {})
            networks[net_row["name"]] = {"NetworkID": net_row["id"], **({"Aliases": list(aliases)} if aliases else {})}
            current["Networks"] = networks
            db.execute("UPDATE containers SET network = ? WHERE id = ?", (dumps(current), row["id"]))
        state = loads(row["state"]) or {}
        if state.get("Status") in _LIVE and state.get("Pid"):
            self._connect_running(row["id"], int(state["Pid"]), net_row)

    def _connect_running(self, container_id: str, pid: int, net_row) -> None:
        index = len(self.store.all("SELECT 1 FROM ip_allocations WHERE container_id = ?", (container_id,)))
        with self.store.transaction() as db:
            address = self._free_address(db, net_row)
            db.execute("INSERT INTO ip_allocations (network_id, address, container_id) VALUES (?,?,?)",
                       (net_row["id"], address, container_id))
        spec, ep = self.spec(net_row), self._endpoint(container_id, net_row, address, index)
        try:
            with self.engine.lock("network"):
                drv = self.driver(net_row["driver"])
                self._ensure_network(drv, spec)
                self._keep_attached(container_id, net_row["id"], drv.attach(spec, ep, pid))
        except BaseException:
            self.driver(net_row["driver"]).detach(spec, ep, self._attached(container_id, net_row["id"]))
            with self.store.transaction() as db:
                db.execute("DELETE FROM ip_allocations WHERE network_id = ? AND container_id = ?",
                           (net_row["id"], container_id))
            raise
        with self.store.transaction() as db:
            settings = loads(db.execute("SELECT network FROM containers WHERE id = ?",
                                        (container_id,)).fetchone()[0]) or {}
            networks = settings.setdefault("Networks", {})
            aliases = (networks.get(net_row["name"]) or {}).get("Aliases")  # network connect --alias
            entry = _endpoint_settings(net_row, ep)
            if aliases:
                entry["Aliases"] = aliases
            _add_dns_names(db, container_id, net_row["name"], entry)
            networks[net_row["name"]] = entry
            db.execute("UPDATE containers SET network = ? WHERE id = ?", (dumps(settings), container_id))
        self.engine.emit("network", "connect", net_row["id"],
                         {"container": container_id, "name": net_row["name"], "type": net_row["driver"]})
        self._refresh_peers(container_id, [net_row["name"]], include_self=True)

    def disconnect(self, network_ref: str, container_ref: str, force: bool = False) -> None:
        """`network disconnect`: leave a network (its interface goes at once when running)."""
        net_row = self._row(network_ref)
        row = self._find_container(container_ref)
        host_config = loads(row["host_config"]) or {}
        settings = loads(row["network"]) or {}
        if net_row["name"] not in self._member_names(host_config, settings):
            raise FailedPrecondition(f"container {row['id']} is not connected to network {net_row['name']}")
        if net_row["name"] in ("host", "none"):
            raise FailedPrecondition("container cannot be disconnected from host network or connected to host network")
        alloc = self.store.one("SELECT * FROM ip_allocations WHERE container_id = ? AND network_id = ?",
                               (row["id"], net_row["id"]))
        if alloc is not None:
            index = [a["network_id"] for a in self.store.all(
                "SELECT network_id FROM ip_allocations WHERE container_id = ? ORDER BY rowid", (row["id"],))
            ].index(net_row["id"])
            spec, ep = self.spec(net_row), self._endpoint(row["id"], net_row, alloc["address"], index)
            with self.engine.lock("network"):
                drv = self.driver(net_row["driver"])
                if index == 0:
                    drv.unpublish(spec, ep)
                drv.detach(spec, ep, self._attached(row["id"], net_row["id"]))
            with self.store.transaction() as db:
                db.execute("DELETE FROM ip_allocations WHERE container_id = ? AND network_id = ?",
                           (row["id"], net_row["id"]))
                db.execute("DELETE FROM meta WHERE key = ?", (f"attached/{row['id']}/{net_row['id']}",))
            self.engine.emit("network", "disconnect", net_row["id"],
                             {"container": row["id"], "name": net_row["name"], "type": net_row["driver"]})
        with self.store.transaction() as db:
            current = loads(db.execute("SELECT network FROM containers WHERE id = ?", (row["id"],)).fetchone()[0]) or {}
            current["Networks"] = {name: entry for name, entry in (current.get("Networks") or {}).items()
                                   if name != net_row["name"]}
            hc = loads(db.execute("SELECT host_config FROM containers WHERE id = ?", (row["id"],)).fetchone()[0])
            if self._primary_name(hc) == net_row["name"]:
                # Docker: a container disconnected from its primary network keeps the others (or none)
                rest = [n for n in (current.get("Networks") or {}) if n != net_row["name"]]
                hc["NetworkMode"] = rest[0] if rest else "none"
                db.execute("UPDATE containers SET host_config = ? WHERE id = ?", (dumps(hc), row["id"]))
            db.execute("UPDATE containers SET network = ? WHERE id = ?", (dumps(current), row["id"]))
        self._refresh_peers(row["id"], [net_row["name"]])

    # -- hosts files of peers --------------------------------------------------------------

    def _refresh_peers(self, container_id: str, network_names: list[str], include_self: bool = False) -> None:
        """Rewrite /etc/hosts of running containers sharing a user network (in
        place: the file is bind-mounted, its inode must stay), and tell the
        resolver (berth.core.networks.dns) who is on those networks now."""
        if any(name not in PREDEFINED for name in network_names):
            try:
                self.resolver.sync()
            except Exception as exc:  # names through DNS are best effort: /etc/hosts has them too
                from berth.core.plumbing.log import get_logger

                get_logger("berth.dns").warning("resolver update failed", error=str(exc))
        containers = self.engine.containers
        ids = set()
        for name in network_names:
            if name in PREDEFINED:
                continue
            net = self.store.one("SELECT id FROM networks WHERE name = ?", (name,))
            if net is None:
                continue
            ids.update(r["container_id"] for r in self.store.all(
                "SELECT container_id FROM ip_allocations WHERE network_id = ?", (net["id"],)))
        if include_self:
            ids.add(container_id)
        elif container_id in ids:
            ids.discard(container_id)
        for peer in ids:
            path = Path(containers.run_dir(peer)) / "hosts"
            try:
                peer_obj = type("C", (), {"id": peer})()
                text = "\n".join(LOCALHOST_LINES + self.hosts_entries(peer_obj)) + "\n"
                fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except (OSError, BerthError):
                continue
            with os.fdopen(fd, "w") as f:
                f.truncate(0)
                f.write(text)

    # -- crash recovery ----------------------------------------------------------------------

    def _marker(self, container_id: str) -> Path:
        return self.engine.runroot / "network" / container_id

    def _write_marker(self, container_id: str, pid: int) -> None:
        path = self._marker(container_id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic.write_text(path, f"{pid} {proc_start(pid)}")  # recover() in another process may read it now

    def _owner_alive(self, container_id: str) -> bool:
        try:
            pid, start = self._marker(container_id).read_text().split()
        except (OSError, ValueError):
            return False
        return start != "None" and proc_start(int(pid)) == int(start)

    def recover(self) -> None:
        """Release allocations of containers that are not running and whose
        setup process is gone (a crash mid-start, a killed monitor)."""
        if self._recovered:
            return
        self._recovered = True
        for r in self.store.all("SELECT DISTINCT container_id FROM ip_allocations "
                                "UNION SELECT DISTINCT container_id FROM port_allocations"):
            cid = r["container_id"]
            c = self.store.one("SELECT state FROM containers WHERE id = ?", (cid,))
            state = loads(c["state"]) if c else {}
            if c is not None and state.get("Status") in _LIVE and proc_start(int(state.get("Pid") or 0)):
                continue
            if c is not None and state.get("Status") == "restarting" and state.get("MonitorStart") is not None \
                    and proc_start(int(state.get("MonitorPid") or 0)) == state["MonitorStart"]:
                continue  # between two processes: its monitor keeps the network for the next one
            if self._owner_alive(cid):
                continue
            self._release(cid)
            self._clear_settings(cid)


def _add_dns_names(db, container_id: str, network_name: str, entry: dict) -> None:
    """EndpointSettings.DNSNames on a user-defined network: what its resolver answers (berth.core.networks.dns)."""
    if network_name in PREDEFINED:
        return
    from berth.core.networks.dns import dns_names

    row = db.execute("SELECT name, config FROM containers WHERE id = ?", (container_id,)).fetchone()
    entry["DNSNames"] = dns_names(row["name"], container_id, (loads(row["config"]) or {}).get("Hostname") or "",
                                  entry.get("Aliases"))


def _endpoint_settings(net_row, ep: Endpoint) -> dict:
    return {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": net_row["id"],
            "EndpointID": _endpoint_id(ep.container_id, net_row["id"]), "Gateway": ep.gateway,
            "IPAddress": ep.address, "IPPrefixLen": ep.prefixlen, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "MacAddress": ep.mac, "DriverOpts": None}


def _endpoint_id(container_id: str, network_id: str) -> str:
    from berth.core.oci.content import sha256_bytes

    return sha256_bytes(f"endpoint/{container_id}/{network_id}".encode())[7:]



SYSTEMD_STUB = "127.0.0.53"


def host_resolv_text(path: str = "/etc/resolv.conf",
                     systemd_path: str = "/run/systemd/resolve/resolv.conf") -> str:
    """The host's resolv.conf for a container in another network namespace. When it names
    only systemd-resolved's stub (127.0.0.53, Ubuntu's default), which a container cannot
    reach, the upstream servers systemd-resolved keeps in `systemd_path` (as Docker)."""
    text = _read_text(path)
    servers = [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"]
               and len(line.split()) > 1]
    if servers == [SYSTEMD_STUB]:
        return _read_text(systemd_path) or text
    return text


def _read_text(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def resolv_text(host_text: str, host_config: dict, *, keep_loopback: bool = False, ndots_zero: bool = False) -> str:
    """A container's resolv.conf from the host's text: loopback name servers
    dropped (unreachable from another network namespace) unless
    `keep_loopback`, then HostConfig's Dns, DnsSearch and DnsOptions in place
    of the host's nameserver, search/domain and options lines (as Docker).
    `ndots_zero`: Docker's "options ndots:0" of its internal resolver, unless ndots is set."""
    out = []
    dns, search, options = (host_config.get("Dns") or [], host_config.get("DnsSearch") or [],
                            host_config.get("DnsOptions") or [])
    for line in host_text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "nameserver":
            if dns or len(words) < 2 or (_is_loopback(words[1]) and not keep_loopback):
                continue
        elif words[0] in ("search", "domain") and search:
            continue
        elif words[0] == "options" and options:
            continue
        out.append(line)
    out += [f"nameserver {d}" for d in dns]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    if ndots_zero and not any(line.split()[0] == "options" and "ndots:" in line for line in out):
        out.append("options ndots:0")
    return "\n".join(out) + "\n"

def _default_bridge(device: str) -> dict[str, str]:
    """The options of the predefined `bridge` network, as Docker shows its docker0's."""
    return {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": device}


def _driver_options(row, options: dict) -> dict[str, str]:
    """The network's options for its driver (inspect's Options). A network
    created before they were kept: the default bridge's, else none."""
    if "opts" in options:
        return {k: str(v) for k, v in options["opts"].items()}
    return _default_bridge(options["bridge"]) if row["name"] == "bridge" and options.get("bridge") else {}


def _cannot_publish(net_row) -> str:
    return (f"network {net_row['name']} cannot publish ports: its driver {net_row['driver']} does not "
            "(publish on a bridge network, or drop -p/-P)")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _host_port_free(proto: str, host_ip: str, port: int) -> bool:
    """Whether a host process holds the port: try to bind it, as the kernel would refuse us."""
    kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(proto)
    if kind is None:
        return True
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == 99:  # EADDRNOTAVAIL: not an address of this host
                raise InvalidArgument(f"Error starting userland proxy: listen {proto}4 {host_ip}:{port}: bind: "
                                      "cannot assign requested address") from None
            return False
    return True


def recover_after_reboot(engine, store) -> None:
    """An empty run directory: no container runs, every allocation is stale.

    After a real reboot devices and rules died with the host; after a wiped
    run directory they may remain, so each is removed (idempotent) first.
    `store` is passed in because engine.store is still being opened.
    """
    service = NetworkService(engine)
    for a in store.all("SELECT * FROM ip_allocations"):
        net_row = store.one("SELECT * FROM networks WHERE id = ?", (a["network_id"],))
        if net_row is None:
            continue
        spec, ep = service.spec(net_row), service._endpoint(a["container_id"], net_row, a["address"], 0)
        key = f"attached/{a['container_id']}/{a['network_id']}"
        attached = store.one("SELECT value FROM meta WHERE key = ?", (key,))
        try:
            drv = service.driver(net_row["driver"])
            drv.unpublish(spec, ep)
            drv.detach(spec, ep, loads(attached["value"]) if attached else None)
        except BerthError:
            pass
    with store.transaction() as db:
        db.execute("DELETE FROM ip_allocations")
        db.execute("DELETE FROM port_allocations")
        db.execute("DELETE FROM meta WHERE key LIKE 'ports/%' OR key LIKE 'attached/%'")
