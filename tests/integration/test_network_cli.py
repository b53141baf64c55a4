"""`berth network ...` commands: Docker's columns, filters, inspect shape and errors."""

from __future__ import annotations

import json


def test_predefined_networks_listed(berth):
    out = berth("network", "ls", check=True).stdout.splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = {line.split()[1]: line.split() for line in out[1:]}
    assert set(rows) == {"bridge", "host", "none"}
    assert rows["bridge"][2:] == ["bridge", "local"]
    bridge = json.loads(berth("network", "inspect", "bridge", check=True).stdout)[0]
    assert bridge["IPAM"]["Config"] == [{"Subnet": f"{berth.subnet}.0/24", "Gateway": f"{berth.subnet}.1"}]
    assert bridge["Options"]["com.docker.network.bridge.name"] == berth.bridge


def test_create_ls_inspect_rm_prune(berth):
    third = int(berth.subnet.rsplit(".", 1)[1])
    subnet = f"{berth.subnet.rsplit('.', 1)[0]}.{(third + 3) % 256}"
    net_id = berth("network", "create", "--subnet", f"{subnet}.0/24", "--gateway", f"{subnet}.254",
                   "--label", "team=a", "--internal", "mine", check=True).stdout.strip()
    assert len(net_id) == 64
    info = json.loads(berth("network", "inspect", net_id[:12], check=True).stdout)[0]
    assert info["Name"] == "mine" and info["Driver"] == "bridge" and info["Internal"] is True
    assert info["IPAM"]["Config"] == [{"Subnet": f"{subnet}.0/24", "Gateway": f"{subnet}.254"}]
    assert info["Labels"] == {"team": "a"}
    assert berth("network", "inspect", "-f", "{{.Name}}", "mine", check=True).stdout == "mine\n"
    assert berth("network", "ls", "-q", "-f", "name=mine", check=True).stdout == net_id[:12] + "\n"
    assert berth("network", "ls", "--format", "{{.Name}}", "-f", "type=custom", check=True).stdout == "mine\n"
    assert berth("network", "ls", "-q", "-f", "label=team=b", check=True).stdout == ""
    dup = berth("network", "create", "mine")
    assert dup.returncode == 1 and dup.stderr == "Error: network with name mine already exists\n"
    overlap = berth("network", "create", "--subnet", f"{subnet}.128/25", "other")
    assert overlap.returncode == 1 and "Pool overlaps with other one on this address space" in overlap.stderr
    assert berth("network", "prune", "-f", check=True).stdout == "Deleted Networks:\nmine\n"
    assert berth("network", "ls", "-q", "-f", "name=mine", check=True).stdout == ""


def test_errors(berth):
    res = berth("network", "rm", "bridge")
    assert res.returncode == 1 and res.stderr == "Error: bridge is a pre-defined network and cannot be removed\n"
    res = berth("network", "rm", "nosuch")
    assert res.returncode == 1 and res.stderr == "Error: network nosuch not found\n"
    res = berth("network", "inspect", "nosuch")
    assert res.returncode == 1 and "network nosuch not found" in res.stderr
    res = berth("run", "--rm", "--network", "nosuch", berth.image, "true")
    assert res.returncode != 0 and "network nosuch not found" in res.stderr
    res = berth("run", "--rm", "-p", "abc", berth.image, "true")
    assert res.returncode == 125 and "invalid containerPort: abc" in res.stderr
    berth("create", "--name", "idle", berth.image, "true", check=True)
    res = berth("port", "idle", "80")
    assert res.returncode == 1 and res.stderr == "Error: No public port '80/tcp' published for idle\n"
