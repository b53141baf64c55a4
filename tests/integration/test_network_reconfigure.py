"""Networks that change under a container (issue #11): reconnecting after a disconnect,
network.subnet changed in the configuration, and what inspect says of volumes and the
restart policy."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import time


def wait_running(berth, name):
    deadline = time.monotonic() + 20
    while berth("exec", name, "true").returncode != 0:
        assert time.monotonic() < deadline, f"{name} never ran"
        time.sleep(0.1)


def addresses(berth, name) -> list[str]:
    out = berth("exec", name, "ip", "-4", "-o", "addr", "show", check=True).stdout
    return [line.split()[3] for line in out.splitlines() if " lo " not in line]


def test_disconnect_then_connect_bridge_reconnects(berth):
    berth("run", "-d", "--name", "rc", berth.image, "sleep", "1000", check=True)
    wait_running(berth, "rc")
    assert len(addresses(berth, "rc")) == 1
    berth("network", "disconnect", "bridge", "rc", check=True)
    assert addresses(berth, "rc") == []
    p = berth("network", "connect", "bridge", "rc")
    assert p.returncode == 0, p.stderr
    (address,) = addresses(berth, "rc")
    assert ipaddress.ip_interface(address).network == ipaddress.ip_network(f"{berth.subnet}.0/24")
    info = json.loads(berth("inspect", "rc", check=True).stdout)[0]
    assert list(info["NetworkSettings"]["Networks"]) == ["bridge"]
    # a stopped container too, and it starts on the network again
    berth("stop", "-t", "0", "rc", check=True)
    berth("network", "disconnect", "bridge", "rc", check=True)
    berth("network", "connect", "bridge", "rc", check=True)
    berth("start", "rc", check=True)
    wait_running(berth, "rc")
    assert len(addresses(berth, "rc")) == 1
    # --network none is still refused, as Docker
    berth("create", "--name", "nonet", "--network", "none", berth.image, "true", check=True)
    p = berth("network", "connect", "bridge", "nonet")
    assert p.returncode == 1 and "Traceback" not in p.stderr


def test_a_changed_subnet_in_the_configuration_applies_when_no_container_uses_it(berth):
    berth("run", "--rm", berth.image, "true", check=True)  # the bridge network is in use once
    old = ipaddress.ip_network(f"{berth.subnet}.0/24")
    new_prefix = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"
    while new_prefix == berth.subnet:
        new_prefix = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"
    berth.config.write_text(berth.config.read_text().replace(berth.subnet + ".", new_prefix + "."))
    new = ipaddress.ip_network(f"{new_prefix}.0/24")
    berth("run", "-d", "--name", "first", berth.image, "sleep", "1000", check=True)
    wait_running(berth, "first")
    (address,) = addresses(berth, "first")
    assert ipaddress.ip_interface(address).network == new
    info = json.loads(berth("network", "inspect", "bridge", check=True).stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == str(new)
    # while a container uses it, a change waits, and says so
    berth.config.write_text(berth.config.read_text().replace(new_prefix + ".", berth.subnet + "."))
    p = berth("run", "-d", "--name", "second", berth.image, "sleep", "1000")
    assert p.returncode == 0 and "WARNING: network.subnet" in p.stderr and "not applied" in p.stderr, p.stderr
    wait_running(berth, "second")
    (address,) = addresses(berth, "second")
    assert ipaddress.ip_interface(address).network == new
    berth("rm", "-f", "first", "second", check=True)
    berth("run", "--rm", "--name", "third", berth.image, "true", check=True)
    info = json.loads(berth("network", "inspect", "bridge", check=True).stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == str(old)


def test_a_bad_subnet_in_the_configuration_is_one_line(berth):
    good = berth.config.read_text()
    for subnet, gateway in (("10.1.2.300/24", "10.1.2.1"), ("not a subnet", "10.1.2.1"), ("10.1.2.0/24", "10.9.9.9"),
                            ("10.1.2.0/31", "10.1.2.1"), ("fd00::/64", "fd00::1")):
        berth.config.write_text(good.replace(f'subnet = "{berth.subnet}.0/24"', f'subnet = "{subnet}"')
                                .replace(f'gateway = "{berth.subnet}.1"', f'gateway = "{gateway}"'))
        p = berth("run", "--rm", berth.image, "true")
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 125 and len(lines) == 1 and "in the configuration" in lines[0], (subnet, p.stderr)
        assert "internal error" not in p.stderr


def test_inspect_shows_volume_sources_and_the_restart_policy(berth):
    berth("create", "--name", "vols", "-v", "named:/n", "-v", "/anon", berth.image, "true", check=True)
    info = json.loads(berth("inspect", "vols", check=True).stdout)[0]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    for dest in ("/n", "/anon"):
        source = mounts[dest]["Source"]
        assert source.endswith("/_data") and os.path.isdir(source), mounts[dest]
        mountpoint = berth("volume", "inspect", "-f", "{{.Mountpoint}}", mounts[dest]["Name"], check=True).stdout
        assert source == mountpoint.strip()
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
