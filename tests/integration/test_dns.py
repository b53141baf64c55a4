"""Names through DNS on a user-defined network (aardvark-dns, berth.core.networks.dns):
busybox's nslookup asks the network's gateway, the test's own resolver, and
only for names that resolver knows (it would forward others to the host's
servers). The resolver runs while containers are on user networks, and only then."""

from __future__ import annotations

import json
import os
import time

from harness import inspect

from berth.core.networks import dns


def user_subnet(berth, step: int = 1) -> str:
    base, last = berth.subnet.rsplit(".", 1)
    return f"{base}.{(int(last) + step) % 256}"


def lookup(berth, container: str, name: str) -> list[str]:
    """The addresses `nslookup NAME` inside `container` gets (the server's own line left out)."""
    got = berth("exec", container, "nslookup", name)
    if got.returncode:
        files = {p.name: p.read_text() for p in (berth.runroot / "network" / "dns").iterdir()}
        import subprocess
        log = (berth.runroot / "network" / "aardvark.log").read_text()
        procs = subprocess.run(["pgrep", "-af", "aardvark"], capture_output=True, text=True).stdout
        raise AssertionError(f"{got.stdout}{got.stderr}{files}{log}\n{procs}")
    out = got.stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.startswith("Address:") and ":53" not in line)


def resolver_pid(berth) -> int:
    try:
        return int((berth.runroot / "network" / "dns" / dns.PID_FILE).read_text())
    except (OSError, ValueError):
        return 0


def aardvarks(berth) -> list[int]:
    """aardvark-dns processes serving this installation's directory."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"aardvark-dns" in argv[0] and os.fsencode(berth.runroot) in b" ".join(argv):
                found.append(int(entry))
    return found


def test_names_and_aliases_resolve_on_a_user_network(berth):
    subnet = user_subnet(berth)
    berth("network", "create", "--subnet", f"{subnet}.0/24", "appnet", check=True)
    berth("run", "-d", "--name", "bystander", berth.image, "sleep", "300", check=True)  # the default bridge
    assert aardvarks(berth) == []  # no resolver for the default bridge
    berth("run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www", berth.image,
          "sleep", "300", check=True)
    assert berth("exec", "web", "cat", "/etc/resolv.conf", check=True).stdout.splitlines()[0] == \
        f"nameserver {subnet}.1"
    web = inspect(berth, "web")
    address = web["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    assert web["NetworkSettings"]["Networks"]["appnet"]["DNSNames"] == ["web", "www", web["Id"][:12]]
    # a container started later resolves the earlier one, by name, alias and short ID
    berth("run", "-d", "--name", "later", "--network", "appnet", berth.image, "sleep", "300", check=True)
    for name in ("web", "www", web["Id"][:12]):
        assert lookup(berth, "later", name) == [address]
    # and the earlier one resolves the later one
    assert lookup(berth, "web", "later") == [inspect(berth, "later")["NetworkSettings"]["Networks"]["appnet"]
                                             ["IPAddress"]]
    # one resolver for the installation
    assert aardvarks(berth) == [resolver_pid(berth)]
    # names leave with their containers: two share an alias, one goes
    berth("run", "-d", "--name", "b1", "--network", "appnet", "--network-alias", "svc", berth.image, "sleep", "300",
          check=True)
    berth("run", "-d", "--name", "b2", "--network", "appnet", "--network-alias", "svc", berth.image, "sleep", "300",
          check=True)
    # the bridge's MAC is its own: were it its lowest port's, a container leaving could change it and
    # leave the others' ARP entries for the gateway, their name server, stale (queries unanswered)
    net_id = json.loads(berth("network", "inspect", "appnet", check=True).stdout)[0]["Id"]
    mac = open(f"/sys/class/net/br-{net_id[:12]}/address").read().strip()
    assert mac == "02:42:" + ":".join(f"{int(b):02x}" for b in f"{subnet}.1".split("."))
    b1, b2 = (inspect(berth, n)["NetworkSettings"]["Networks"]["appnet"]["IPAddress"] for n in ("b1", "b2"))
    assert lookup(berth, "web", "svc") == sorted([b1, b2])
    berth("rm", "-f", "b2", check=True)
    assert lookup(berth, "web", "svc") == [b1]
    # the default bridge keeps Docker's behaviour: the host's name servers, not the resolver
    assert f"nameserver {subnet}.1" not in berth("exec", "bystander", "cat", "/etc/resolv.conf", check=True).stdout
    # a running container connected to the network becomes a name there
    bad = berth("network", "connect", "--alias", "x", "bridge", "web")
    assert bad.returncode != 0 and "network-scoped alias is supported only for containers in user defined " \
                                   "networks" in bad.stderr
    berth("network", "connect", "--alias", "watcher", "appnet", "bystander", check=True)
    bystander = inspect(berth, "bystander")["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    assert lookup(berth, "web", "bystander") == [bystander]
    assert lookup(berth, "web", "watcher") == [bystander]
    # the last one to leave stops the resolver; no process is left behind
    berth("rm", "-f", "web", "later", "b1", check=True)
    assert aardvarks(berth) == [resolver_pid(berth)]  # bystander is still on appnet
    berth("stop", "-t", "0", "bystander", check=True)
    deadline = time.monotonic() + 5
    while aardvarks(berth) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aardvarks(berth) == [] and resolver_pid(berth) == 0
    # and it comes back with the next container
    berth("start", "bystander", check=True)
    assert len(aardvarks(berth)) == 1
    assert lookup(berth, "bystander", "bystander") == [inspect(berth, "bystander")["NetworkSettings"]["Networks"]
                                                       ["appnet"]["IPAddress"]]


def test_user_dns_servers_replace_the_resolver(berth):
    """--dns on a user network: the servers given, as Docker forwards to them (names stay in /etc/hosts)."""
    subnet = user_subnet(berth, 2)
    berth("network", "create", "--subnet", f"{subnet}.0/24", "own", check=True)
    out = berth("run", "--rm", "--network", "own", "--dns", "127.0.0.1", berth.image, "cat", "/etc/resolv.conf",
                check=True).stdout
    assert "nameserver 127.0.0.1" in out and f"nameserver {subnet}.1" not in out
