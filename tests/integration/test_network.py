"""Networking end to end with real containers: bridge, published ports,
links, container/host/none modes, user networks, conflicts, cleanup.

Every installation (the `berth` fixture) has its own bt<hex> bridge and /24
(tests/harness.py), torn down at cleanup. Traffic goes only to 127.0.0.1
and to the addresses of containers these tests start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

from harness import fetch

SERVE = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inspect(berth, name: str) -> dict:
    return json.loads(berth("inspect", name, check=True).stdout)[0]


def address(berth, name: str) -> str:
    nets = inspect(berth, name)["NetworkSettings"]["Networks"]
    return next(iter(nets.values()))["IPAddress"]


def serve(berth, name: str, *flags: str) -> str:
    berth("run", "-d", "--name", name, *flags, berth.image, "sh", "-c", SERVE, check=True)
    return address(berth, name)


def wget(berth, url: str, *flags: str):
    return berth("run", "--rm", *flags, berth.image, "timeout", "5", "wget", "-q", "-O", "-", url)


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_bridge_address_hosts_resolv(berth):
    out = berth("run", "--rm", "--hostname", "box", berth.image, "sh", "-c",
                "ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address; cat /etc/hosts /etc/resolv.conf",
                check=True).stdout
    assert f"inet {berth.subnet}." in out
    assert f"default via {berth.subnet}.1 dev eth0" in out
    ip = out.split("inet ")[1].split("/")[0]
    assert "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split(".")) in out
    assert f"{ip}\tbox" in out
    for line in out.splitlines():
        if line.startswith("nameserver"):
            assert not line.split()[1].startswith("127.")


def test_published_port_reached_from_host_and_from_another_container(berth):
    port = free_port()
    ip = serve(berth, "web", "-p", f"127.0.0.1:{port}:80")
    assert "hello-from" in fetch(f"http://127.0.0.1:{port}/")
    assert berth("port", "web", check=True).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert berth("port", "web", "80/tcp", check=True).stdout == f"127.0.0.1:{port}\n"
    settings = inspect(berth, "web")["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert settings["IPAddress"] == ip and settings["Gateway"] == f"{berth.subnet}.1"
    got = wget(berth, f"http://{ip}:80/")
    assert "hello-from" in got.stdout, got.stderr


def test_automatic_ports_and_publish_all(berth):
    berth("run", "-d", "--name", "auto", "--expose", "80", "-P", berth.image, "sh", "-c", SERVE, check=True)
    line = berth("port", "auto", "80", check=True).stdout.strip()
    host_ip, port = line.rsplit(":", 1)
    assert host_ip == "0.0.0.0" and 49000 <= int(port) <= 49900
    assert "hello-from" in fetch(f"http://127.0.0.1:{port}/")


def test_port_conflict_with_a_container_leaves_nothing(berth):
    port = free_port()
    serve(berth, "first", "-p", f"{port}:80")
    links_before, rules_before = host_links().count("veth"), ruleset().count("dnat to")
    res = berth("run", "-d", "--name", "second", "-p", f"127.0.0.1:{port}:80", berth.image, "sleep", "30")
    assert res.returncode == 125
    assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in res.stderr
    assert inspect(berth, "second")["State"]["Running"] is False
    assert host_links().count("veth") == links_before
    assert ruleset().count("dnat to") == rules_before
    bridge = json.loads(berth("network", "inspect", "bridge", check=True).stdout)[0]
    assert [c["Name"] for c in bridge["Containers"].values()] == ["first"]
    # the port returns when its holder stops
    berth("rm", "-f", "first", check=True)
    berth("start", "second", check=True)
    assert berth("port", "second", check=True).stdout == f"80/tcp -> 127.0.0.1:{port}\n"


def test_port_conflict_with_a_host_process(berth):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for spec in (f"127.0.0.1:{port}:80", f"{port}:80"):
            res = berth("run", "-d", "-p", spec, berth.image, "sleep", "30")
            assert res.returncode == 125
            assert "port is already allocated" in res.stderr
    assert "veth" not in host_links() or all(
        f"master {berth.bridge}" not in line for line in host_links().splitlines() if "veth" in line)


def test_links_variables_and_hosts(berth):
    serve(berth, "db", "-e", "PASSWORD=s3cret", "--expose", "80")
    ip = address(berth, "db")
    out = berth("run", "--rm", "--name", "app", "--link", "db:data", berth.image, "sh", "-c",
                "env | grep ^DATA_ | sort; grep data /etc/hosts", check=True).stdout
    assert f"DATA_PORT=tcp://{ip}:80" in out
    assert f"DATA_PORT_80_TCP=tcp://{ip}:80" in out
    assert f"DATA_PORT_80_TCP_ADDR={ip}" in out
    assert "DATA_PORT_80_TCP_PORT=80" in out and "DATA_PORT_80_TCP_PROTO=tcp" in out
    assert "DATA_NAME=/app/data" in out
    assert "DATA_ENV_PASSWORD=s3cret" in out
    assert "DATA_ENV_PATH" not in out and "DATA_ENV_HOME" not in out
    assert f"{ip}\tdata" in out and " db" in out
    missing = berth("run", "--rm", "--link", "nosuch:x", berth.image, "true")
    assert missing.returncode != 0 and "could not get container for nosuch" in missing.stderr
    berth("stop", "-t", "1", "db", check=True)
    stopped = berth("run", "--rm", "--name", "app2", "--link", "db", berth.image, "true")
    assert stopped.returncode != 0
    assert "Cannot link to a non running container: /db AS /app2/db" in stopped.stderr


def test_container_mode_shares_the_address(berth):
    ip = serve(berth, "owner")
    out = berth("run", "--rm", "--network", "container:owner", berth.image, "sh", "-c",
                "ip -o -4 addr show eth0; timeout 5 wget -q -O - http://127.0.0.1:80/", check=True).stdout
    assert f"inet {ip}/" in out and "hello-from" in out
    berth("stop", "-t", "1", "owner", check=True)
    res = berth("run", "--rm", "--network", "container:owner", berth.image, "true")
    assert res.returncode != 0 and "cannot join network of a non running container" in res.stderr


def test_host_and_none_modes(berth):
    host_names = sorted(line.split(":")[1].strip().split("@")[0] for line in host_links().splitlines())
    out = berth("run", "--rm", "--network", "host", berth.image, "cat", "/proc/net/dev", check=True).stdout
    inside = sorted(line.split(":")[0].strip() for line in out.splitlines()[2:])
    assert inside == host_names
    out = berth("run", "--rm", "--network", "none", berth.image, "cat", "/proc/net/dev", check=True).stdout
    assert [line.split(":")[0].strip() for line in out.splitlines()[2:]] == ["lo"]


def test_user_network_names_and_removal(berth):
    subnet = f"{berth.subnet.rsplit('.', 1)[0]}.{(int(berth.subnet.rsplit('.', 1)[1]) + 1) % 256}"
    net_id = berth("network", "create", "--subnet", f"{subnet}.0/24", "appnet", check=True).stdout.strip()
    serve(berth, "srv", "--network", "appnet")
    assert address(berth, "srv").startswith(f"{subnet}.")
    got = wget(berth, "http://srv:80/", "--network", "appnet")
    assert "hello-from" in got.stdout, got.stderr
    # a container started later is written into the hosts file of the earlier one
    serve(berth, "srv2", "--network", "appnet")
    hosts = berth("exec", "srv", "cat", "/etc/hosts", check=True).stdout
    assert f"{address(berth, 'srv2')}\tsrv2 " in hosts
    got = berth("exec", "srv", "timeout", "5", "wget", "-q", "-O", "-", "http://srv2:80/")
    assert "hello-from" in got.stdout, got.stderr
    berth("rm", "-f", "srv2", check=True)
    assert "srv2" not in berth("exec", "srv", "cat", "/etc/hosts", check=True).stdout
    res = berth("network", "rm", "appnet")
    assert res.returncode == 1
    assert f"error while removing network: network appnet id {net_id} has active endpoints" in res.stderr
    bridge_name = f"br-{net_id[:12]}"
    assert bridge_name in host_links()
    berth("rm", "-f", "srv", check=True)
    assert berth("network", "rm", "appnet", check=True).stdout == "appnet\n"
    assert bridge_name not in host_links()
    assert berth("network", "inspect", "appnet").returncode == 1


def test_connect_and_disconnect_a_running_container(berth):
    subnet = f"{berth.subnet.rsplit('.', 1)[0]}.{(int(berth.subnet.rsplit('.', 1)[1]) + 2) % 256}"
    berth("network", "create", "--subnet", f"{subnet}.0/24", "side", check=True)
    berth("run", "-d", "--name", "c1", berth.image, "sleep", "60", check=True)
    berth("network", "connect", "side", "c1", check=True)
    out = berth("exec", "c1", "ip", "-o", "-4", "addr", check=True).stdout
    assert f"eth1    inet {subnet}." in out
    berth("network", "disconnect", "side", "c1", check=True)
    assert "eth1" not in berth("exec", "c1", "ip", "-o", "link", check=True).stdout


def test_twenty_containers_at_once_get_distinct_addresses(berth):
    berth.image
    procs = [berth.popen("run", "-d", "--name", f"n{i}", berth.image, "sleep", "60", stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE) for i in range(20)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    addresses = [address(berth, f"n{i}") for i in range(20)]
    assert len(set(addresses)) == 20
    assert all(a.startswith(f"{berth.subnet}.") for a in addresses)
    for a in addresses:  # each answers on the bridge
        assert subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", a], capture_output=True).returncode == 0


def test_stop_releases_address_rules_and_veth(berth):
    port = free_port()
    ip = serve(berth, "gone", "-p", f"127.0.0.1:{port}:80")
    cid = inspect(berth, "gone")["Id"]
    berth("stop", "-t", "1", "gone", check=True)
    assert f"ctr:{cid}" not in ruleset()
    assert inspect(berth, "gone")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    assert not any(f"master {berth.bridge}" in l for l in host_links().splitlines())
    # the address returns to the pool
    assert serve(berth, "next") == ip


def test_killed_monitor_is_cleaned_by_the_next_command(berth):
    serve(berth, "crashy", "-p", f"127.0.0.1:{free_port()}:80")
    state = inspect(berth, "crashy")
    db = sqlite3.connect(berth.root / "berth.db")
    monitor = json.loads(db.execute("SELECT state FROM containers WHERE id = ?", (state["Id"],)).fetchone()[0])
    db.close()
    for pid in (monitor.get("MonitorPid"), state["State"]["Pid"]):
        if pid:
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    berth("network", "ls", "-q")
    berth("ps", "-a")
    assert f"ctr:{state['Id']}" not in ruleset()
    assert not any(f"master {berth.bridge}" in l for l in host_links().splitlines())


def test_nothing_left_after_cleanup(berth):
    port = free_port()
    serve(berth, "xx", "-p", f"127.0.0.1:{port}:80")
    assert berth.bridge in host_links()
    berth.cleanup()
    assert berth.bridge not in host_links()
    assert f"berth_{berth.bridge}" not in ruleset()


def test_wiped_run_directory_releases_rules_and_addresses(berth):
    ip = serve(berth, "before", "-p", f"127.0.0.1:{free_port()}:80")
    cid = inspect(berth, "before")["Id"]
    subprocess.run(["rm", "-rf", str(berth.runroot)], check=True)  # as after a reboot
    berth("ps", "-a", check=True)
    assert f"ctr:{cid}" not in ruleset()
    assert inspect(berth, "before")["State"]["Running"] is False
    assert serve(berth, "after") == ip  # the address is free again


def test_a_bridge_deleted_behind_berths_back_is_made_again(berth):
    """Network setup is skipped once done this boot, unless its bridge went away."""
    berth("run", "--rm", berth.image, "true", check=True)
    assert berth.bridge in host_links()
    subprocess.run(["ip", "link", "del", berth.bridge], check=True)
    ip = serve(berth, "web")
    assert berth.bridge in host_links()
    res = wget(berth, f"http://{ip}/")
    assert res.returncode == 0 and res.stdout.startswith("hello-from-"), res.stderr


def test_a_failed_run_leaves_no_network_helper_behind(berth):
    """`run` forks its network setup before creating the container; a run
    that fails at create must not leave that process waiting."""
    berth("run", "-d", "--name", "taken", berth.image, "sleep", "30", check=True)
    res = berth("run", "--name", "taken", berth.image, "true")
    assert res.returncode == 125 and "is already in use" in res.stderr, res.stderr
    # the helper was forked from that command (same argv); cancelled and reaped before it returned
    helpers = subprocess.run(["pgrep", "-f", f"{berth.root}.* run --name taken "], capture_output=True, text=True)
    assert helpers.stdout.split() == []
    berth("rm", "-f", "taken", check=True)
    deadline = time.monotonic() + 10
    while True:  # the monitor of "taken" exits shortly after rm; nothing else may remain
        left = subprocess.run(["pgrep", "-f", str(berth.root)], capture_output=True, text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []
