"""macvlan: each container gets a link of its own off a host device (the network's ``parent``),
with its own MAC address on that device's layer 2, as with Docker's driver of that name.

- ``-o parent=DEVICE``: the host device. Without it, as Docker, the network gets a device of
  its own (``dm-<id12>``): containers reach each other, nothing else. Docker makes it a
  ``dummy`` link; berth makes an empty bridge, which kernels without the dummy module have
  too, and which switches between macvlan children the same way.
- ``-o macvlan_mode=bridge|private|vepa|passthru`` (bridge by default).
- No published ports: the containers are on the parent's network, reached at their own
  addresses (berth refuses ``-p``).

Each link is made on the host under the endpoint's host-side name, moved into the container's
namespace and renamed there. Before anything is made, the endpoint's namespace (its PID and the
namespace's inode) is written to the driver's home, so any berth process can undo a half-made
attach (``detach`` with ``attached=None``), and a PID reused by another process is never
mistaken for the container's. The host's ``ip`` and ``nsenter`` (iproute2, util-linux) do the
work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from berth.core.driverkit import run, write_atomic
from berth.core.drivers import Endpoint, NetworkDriver, NetworkSpec
from berth.core.errors import BerthError, InvalidArgument


class MacvlanDriver(NetworkDriver):
    """Containers on the parent device's layer 2, each with its own MAC address (Docker's macvlan)."""

    name = "macvlan"
    namespace = "new"
    user_creatable = True
    publishes_ports = False
    MODE_OPTION = "macvlan_mode"
    MODES = ("bridge", "private", "vepa", "passthru")

    @classmethod
    def validate_options(cls, options):
        out = {}
        for key, value in options.items():
            if key == "parent":
                if not os.path.exists(f"/sys/class/net/{value}") or "/" in value or not value:
                    raise InvalidArgument(f"-o parent interface was not found on the host: {value}")
            elif key == cls.MODE_OPTION:
                if value not in cls.MODES:
                    raise InvalidArgument(f"{cls.name}: {key} must be one of {', '.join(cls.MODES)}, not {value!r}")
            else:
                raise InvalidArgument(f"network driver {cls.name} does not know option {key!r}")
            out[key] = value
        out.setdefault(cls.MODE_OPTION, cls.MODES[0])
        return out

    @classmethod
    def device_name(cls, network_id, options):
        # Only a device the network made itself: a parent given with -o belongs to the host.
        return "" if options.get("parent") else _own_device(network_id)

    def create_network(self, net: NetworkSpec) -> None:
        if net.options.get("parent"):
            return
        name = _own_device(net.id)
        if not os.path.exists(f"/sys/class/net/{name}"):
            _ip("link", "add", name, "type", "bridge", what=f"cannot create network {net.name}", ok_exists=True)
        _ip("link", "set", name, "up", what=f"cannot create network {net.name}")

    def delete_network(self, net: NetworkSpec) -> None:
        if not net.options.get("parent") and os.path.exists(f"/sys/class/net/{_own_device(net.id)}"):
            _ip("link", "del", _own_device(net.id), what=f"cannot delete network {net.name}", ok_missing=True)

    def attach(self, net: NetworkSpec, endpoint: Endpoint, pid: int) -> dict:
        what = f"cannot connect the container to network {net.name}"
        parent = net.options.get("parent") or _own_device(net.id)
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
        attached = {"pid": pid, "netns": netns}
        write_atomic(self._record(endpoint), json.dumps(attached).encode())  # first: detach can find it
        _ip("link", "add", endpoint.host_ifname, "link", parent, "type", "macvlan", "mode",
            net.options[self.MODE_OPTION], what=what)
        _ip("link", "set", endpoint.host_ifname, "netns", str(pid), what=what)
        inside = ["nsenter", f"--net=/proc/{pid}/ns/net", "ip"]
        run(inside + ["link", "set", endpoint.host_ifname, "name", endpoint.ifname, "address", endpoint.mac], what)
        run(inside + ["addr", "add", f"{endpoint.address}/{endpoint.prefixlen}", "dev", endpoint.ifname], what)
        run(inside + ["link", "set", endpoint.ifname, "up"], what)
        if endpoint.default_route and endpoint.gateway:
            run(inside + ["route", "add", "default", "via", endpoint.gateway, "dev", endpoint.ifname], what)
        return attached

    def detach(self, net: NetworkSpec, endpoint: Endpoint, attached: dict | None = None) -> None:
        record = self._record(endpoint)
        if attached is None:
            try:
                attached = json.loads(record.read_text())
            except (OSError, ValueError):
                attached = None
        if os.path.exists(f"/sys/class/net/{endpoint.host_ifname}"):  # made, not moved yet
            _ip("link", "del", endpoint.host_ifname, what="cannot detach", ok_missing=True)
        if attached and _same_netns(attached):
            inside = ["nsenter", f"--net=/proc/{attached['pid']}/ns/net", "ip"]
            for name in (endpoint.host_ifname, endpoint.ifname):  # half-made, or wired
                _quiet(inside + ["link", "del", name])
        record.unlink(missing_ok=True)

    def _record(self, endpoint: Endpoint) -> Path:
        return self.home / f"{endpoint.container_id}.json"


def _own_device(network_id: str) -> str:
    return f"dm-{network_id[:12]}"


def _same_netns(attached: dict) -> bool:
    """Whether the recorded PID still has the namespace it had at attach (not a reused PID)."""
    try:
        return os.stat(f"/proc/{attached['pid']}/ns/net").st_ino == attached["netns"]
    except (OSError, KeyError, TypeError):
        return False


def _ip(*args: str, what: str, ok_exists: bool = False, ok_missing: bool = False) -> None:
    try:
        run(["ip", *args], what)
    except BerthError as exc:
        text = str(exc)
        if (ok_exists and "File exists" in text) or (ok_missing and "Cannot find device" in text):
            return
        raise


def _quiet(argv: list[str]) -> None:
    import subprocess

    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
