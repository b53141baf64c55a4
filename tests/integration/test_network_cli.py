"""`berth network ...` commands: Docker's columns, filters, inspect shape and errors."""

from __future__ import annotations

import json
import os
import subprocess

from harness import install_plugin


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


def test_options_are_the_drivers_own_and_inspect_shows_them(berth):
    """`network create -o`: the driver validates its options, inspect shows
    exactly them (the default bridge Docker's docker0 ones, host and none none),
    and the bridge's com.docker.network.bridge.name / mtu take effect."""
    assert json.loads(berth("network", "inspect", "host", check=True).stdout)[0]["Options"] == {}
    assert json.loads(berth("network", "inspect", "none", check=True).stdout)[0]["Options"] == {}
    bridge = json.loads(berth("network", "inspect", "bridge", check=True).stdout)[0]["Options"]
    assert bridge == {"com.docker.network.bridge.default_bridge": "true",
                      "com.docker.network.bridge.name": berth.bridge}
    plain = berth("network", "create", "btplain", check=True).stdout.strip()
    assert json.loads(berth("network", "inspect", "btplain", check=True).stdout)[0]["Options"] == {}
    device = f"bt{plain[:6]}x"
    berth("network", "create", "-o", f"com.docker.network.bridge.name={device}", "--opt",
          "com.docker.network.driver.mtu=1400", "btnamed", check=True)
    info = json.loads(berth("network", "inspect", "btnamed", check=True).stdout)[0]
    assert info["Options"] == {"com.docker.network.bridge.name": device, "com.docker.network.driver.mtu": "1400"}
    try:
        run = berth("run", "--rm", "--network", "btnamed", berth.image, "cat", "/sys/class/net/eth0/mtu", timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "1400\n"
        link = subprocess.run(["ip", "-j", "link", "show", "dev", device], capture_output=True, text=True)
        assert json.loads(link.stdout)[0]["mtu"] == 1400  # the bridge is the device named
        same = berth("network", "create", "-o", f"com.docker.network.bridge.name={device}", "btsame")
        assert same.returncode == 1 and same.stderr == f"Error: device {device} is already in use by another network\n"
    finally:
        berth("network", "rm", "btnamed", "btplain")
    bad = berth("network", "create", "-o", "com.docker.network.bridge.nmae=x", "btbad")
    assert bad.returncode == 125
    assert bad.stderr.startswith("Error: network driver bridge does not know option 'com.docker.network.bridge.nmae'")
    malformed = berth("network", "create", "-o", "novalue", "btbad")
    assert malformed.returncode == 125 and malformed.stderr == "Error: invalid option 'novalue': must be key=value\n"
    assert berth("network", "ls", "-q", "-f", "name=btbad", check=True).stdout == ""


QUIET = """
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def register_network_drivers(register):
        register("btquiet", "btplug_btquiet:Quiet")
"""

QUIET_DRIVER = """
    import json
    from berth.core.drivers import NetworkDriver

    class Quiet(NetworkDriver):
        \"\"\"Gives containers an address on paper only; keeps a diary in its home.\"\"\"

        name = "btquiet"
        user_creatable = True

        def _note(self, *what):
            with open(self.home / "diary", "a") as f:
                f.write(json.dumps(what) + "\\n")

        def attach(self, net, endpoint, pid):
            self._note("attach", endpoint.container_id)
            return {"lease": endpoint.address, "by": "btquiet"}

        def detach(self, net, endpoint, attached=None):
            self._note("detach", endpoint.container_id, attached)
"""


def test_a_driver_gets_a_home_and_what_attach_returned_and_p_needs_a_driver_that_publishes(berth, tmp_path):
    site = tmp_path / "site"
    install_plugin(site, "btquiet", QUIET + QUIET_DRIVER)
    berth.env["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [berth.env.get("PYTHONPATH")] if p])
    berth("network", "create", "-d", "btquiet", "btq", check=True)
    refused = berth("create", "-p", "8080:80", "--network", "btq", berth.image, "true")
    assert refused.returncode == 125
    assert refused.stderr == ("Error: network btq cannot publish ports: its driver btquiet does not "
                              "(publish on a bridge network, or drop -p/-P)\n")
    assert berth("ps", "-aq").stdout == ""  # nothing made
    cid = berth("run", "-d", "--network", "btq", berth.image, "sleep", "30", check=True).stdout.strip()
    address = json.loads(berth("inspect", cid, check=True).stdout)[0]["NetworkSettings"]["Networks"]["btq"]["IPAddress"]
    berth("rm", "-f", cid, check=True)
    diary = berth.root / "networks" / "btquiet" / "diary"
    assert oct(os.stat(diary.parent).st_mode & 0o777) == "0o700"
    notes = [json.loads(line) for line in diary.read_text().splitlines()]
    assert notes == [["attach", cid], ["detach", cid, {"lease": address, "by": "btquiet"}]]
    berth("network", "rm", "btq", check=True)
