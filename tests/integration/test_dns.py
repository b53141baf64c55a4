"""Names through DNS on a user-defined network (dnsmasq, berth.core.networks.dns):
busybox's nslookup asks the network's gateway, the test's own resolver, and
only for names that resolver knows or refuses itself (plain names are never
forwarded). A resolver runs while containers are on its network, and only then."""

from __future__ import annotations

import json
import os
import time

from harness import inspect


def user_subnet(berth, step: int = 1) -> str:
    base, last = berth.subnet.rsplit(".", 1)
    return f"{base}.{(int(last) + step) % 256}"


def lookup(berth, container: str, name: str) -> list[str]:
    """The addresses `nslookup NAME` inside `container` gets (the server's own line left out)."""
    out = berth("exec", container, "nslookup", name, check=True).stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.startswith("Address:") and ":53" not in line)


def resolvers(berth) -> list[int]:
    """dnsmasq processes serving this installation's networks."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if os.path.basename(argv[0]) == b"dnsmasq" and os.fsencode(berth.runroot) in b" ".join(argv):
                found.append(int(entry))
    return found


def test_names_and_aliases_resolve_on_a_user_network(berth):
    subnet = user_subnet(berth)
    berth("network", "create", "--subnet", f"{subnet}.0/24", "appnet", check=True)
    berth("run", "-d", "--name", "bystander", berth.image, "sleep", "300", check=True)  # the default bridge
    assert resolvers(berth) == []  # no resolver for the default bridge
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
    # one resolver for the network
    assert len(resolvers(berth)) == 1
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
    gone = berth("exec", "web", "nslookup", "b2")  # answered at once by the resolver, never sent upstream
    assert gone.returncode == 1 and "NXDOMAIN" in gone.stdout + gone.stderr
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
    assert len(resolvers(berth)) == 1  # bystander is still on appnet
    berth("stop", "-t", "0", "bystander", check=True)
    deadline = time.monotonic() + 5
    while resolvers(berth) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resolvers(berth) == [] and not (berth.runroot / "network" / "dns" / net_id).exists()
    # and it comes back with the next container
    berth("start", "bystander", check=True)
    assert len(resolvers(berth)) == 1
    assert lookup(berth, "bystander", "bystander") == [inspect(berth, "bystander")["NetworkSettings"]["Networks"]
                                                       ["appnet"]["IPAddress"]]


def test_user_dns_servers_replace_the_resolver(berth):
    """--dns on a user network: the servers given, as Docker forwards to them (names stay in /etc/hosts)."""
    subnet = user_subnet(berth, 2)
    berth("network", "create", "--subnet", f"{subnet}.0/24", "own", check=True)
    out = berth("run", "--rm", "--network", "own", "--dns", "127.0.0.1", berth.image, "cat", "/etc/resolv.conf",
                check=True).stdout
    assert "nameserver 127.0.0.1" in out and f"nameserver {subnet}.1" not in out
