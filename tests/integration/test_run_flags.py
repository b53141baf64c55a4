"""run/create flags, each checked by what the process inside sees (/etc/hosts,
/etc/resolv.conf, /proc/self/status, ulimit, its namespaces, PID 1's name,
id -G, a device node that opens) or by what the user reads (inspect, the
warning, Docker's refusal)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest


@pytest.fixture
def ids(berth):
    """Containers a test started; the berth fixture removes them (and everything else) after it."""
    return []


def inside(berth, *argv, network: str = "none") -> str:
    """stdout of `berth run --rm --network NETWORK ARGV...`, which must succeed."""
    res = berth("run", "--rm", "--network", network, *argv)
    assert res.returncode == 0, f"run {argv} exited {res.returncode}: {res.stderr}"
    return res.stdout


def inspect(berth, ref: str) -> dict:
    return json.loads(berth("inspect", ref, check=True).stdout)[0]


def status_field(text: str, field: str) -> str:
    return re.search(rf"^{field}:\s*(\S+)", text, re.M).group(1)


NAMESPACES = "f() { for n; do readlink /proc/self/ns/$n; done; }; f"  # the namespaces named after it


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


# -- /etc files and the environment -------------------------------------------------------


def test_add_host_dns_and_hostname_env(berth):
    out = inside(berth, "--add-host", "db:10.1.2.3", "--add-host", "six=[::1]", "--dns", "10.0.0.53",
                 "--dns", "10.0.0.54", "--dns-search", "example.com", "--dns-option", "ndots:2", "--dns-opt",
                 "timeout:3", "-h", "box", berth.image, "sh", "-c", "cat /etc/hosts /etc/resolv.conf; env")
    assert "10.1.2.3\tdb\n" in out and "::1\tsix\n" in out
    assert "nameserver 10.0.0.53\nnameserver 10.0.0.54\n" in out
    assert "search example.com\n" in out and "options ndots:2 timeout:3\n" in out
    assert "HOSTNAME=box\n" in out
    # the host's /etc/hosts under --network host, with the extra names added
    out = inside(berth, "--add-host", "db:10.1.2.3", berth.image, "cat", "/etc/hosts", network="host")
    assert out.endswith("10.1.2.3\tdb\n")


def test_hostname_env_defaults_to_the_short_id(berth, ids):
    cid = berth("run", "-d", "--network", "none", berth.image, "sh", "-c", "env; sleep 60", check=True).stdout.strip()
    ids.append(cid)
    deadline = time.monotonic() + 10
    while "HOSTNAME=" not in berth("logs", cid).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"HOSTNAME={cid[:12]}\n" in berth("logs", cid).stdout
    host_config = inspect(berth, cid)["HostConfig"]
    assert host_config["ExtraHosts"] is None and host_config["Dns"] == []


def test_bad_values_are_refused_with_docker_s_message(berth):
    for argv, message in [
        (["--add-host", "nocolon"], 'invalid argument "nocolon" for "--add-host" flag: bad format for add-host: '
                                    '"nocolon"'),
        (["--dns", "x.y"], 'invalid argument "x.y" for "--dns" flag: IP address is not correctly formatted: x.y'),
        (["--ulimit", "nofile=20:10"], "ulimit soft limit must be less than or equal to hard limit: 20 > 10"),
        (["--sysctl", "kernel.hostname=x"], "sysctl 'kernel.hostname=x' is not allowed"),
        (["--security-opt", "bogus"], 'Invalid --security-opt: "bogus"'),
        (["--pid", "nope"], "--pid: invalid PID mode"),
        (["--uts", "container:x"], "--uts: invalid UTS mode"),
        (["--oom-score-adj", "5000"], "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
        (["--network", "container:nothere", "-h", "x"], "conflicting options: hostname and the network mode"),
        (["--uts", "host", "-h", "x"], "conflicting options: hostname and the UTS mode"),
        (["--memory-reservation", "1k"], "Minimum memory reservation allowed is 6MB"),
        (["--cpuset-cpus", "99"], "Requested CPUs are not available - requested 99, available: "),
        (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
         'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
        (["--ipc", "host", "--sysctl", "kernel.shmmax=1"], 'sysctl "kernel.shmmax" is not allowed in the hosts ipc '
                                                          'namespace'),
    ]:
        res = berth("create", *argv, berth.image, "true")
        assert res.returncode == 125 and message in res.stderr, (argv, res.stderr)
    assert berth("ps", "-aq").stdout == ""  # nothing half-made


def test_label_file_cidfile_and_quiet(berth, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("# team labels\nteam=core\ntier=web\n")
    cidfile = tmp_path / "cid"
    res = berth("create", "-q", "--label-file", str(labels), "-l", "tier=db", "--cidfile", str(cidfile), berth.image, "true")
    assert res.returncode == 0, res.stderr
    cid = res.stdout.strip()
    assert cidfile.read_text() == cid
    data = inspect(berth, cid)
    assert data["Config"]["Labels"]["team"] == "core" and data["Config"]["Labels"]["tier"] == "db"
    assert data["HostConfig"]["ContainerIDFile"] == str(cidfile)
    again = berth("create", "--cidfile", str(cidfile), berth.image, "true")
    assert again.returncode == 125
    assert (f"container ID file found, make sure the other container isn't running or delete {cidfile}"
            in again.stderr)
    # a failed create removes the file it made
    failed = berth("create", "--cidfile", str(tmp_path / "cid2"), "--pull", "never", "no-such-image")
    assert failed.returncode == 125 and not (tmp_path / "cid2").exists()
    # -q: no pull output, not even "Unable to find image"
    quiet = berth("create", "-q", "--pull", "never", "missing:1")
    assert "Unable to find image" not in quiet.stderr


def test_platform(berth):
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    assert inside(berth, "--platform", f"linux/{arch}", berth.image, "echo", "ok") == "ok\n"
    res = berth("create", "--pull", "never", "--platform", "linux/s390x", berth.image, "true")
    assert res.returncode == 125
    assert "does not match the specified platform" in res.stderr and "linux/s390x" in res.stderr
    res = berth("create", "--platform", "linux/", berth.image, "true")
    assert res.returncode == 125


def test_volume_driver(berth):
    out = inside(berth, "--volume-driver", "local", "-v", "vd-data:/data", berth.image, "sh", "-c",
                 "echo hi > /data/f && cat /data/f")
    assert out == "hi\n"
    assert json.loads(berth("volume", "inspect", "vd-data", check=True).stdout)[0]["Driver"] == "local"
    res = berth("create", "--volume-driver", "nosuch", "-v", "vd-other:/data", berth.image, "true")
    assert res.returncode == 125 and "nosuch" in res.stderr


def test_published_ports_with_host_network_warn(berth, ids):
    res = berth("create", "--network", "host", "-p", "8080:80", berth.image, "true")
    assert res.returncode == 0
    ids.append(res.stdout.strip())
    assert "WARNING: Published ports are discarded when using host network mode\n" in res.stderr


# -- limits and security ------------------------------------------------------------


def test_ulimit(berth):
    out = inside(berth, "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100", berth.image, "sh", "-c",
                 "ulimit -n; ulimit -Hn; ulimit -u")
    assert out.split() == ["512", "1024", "100"]
    assert inspect_ulimits(berth) == [{"Name": "nofile", "Hard": 1024, "Soft": 512}]
    hard = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    if hard != "unlimited":  # without CAP_SYS_RESOURCE a hard limit cannot be raised
        above = str(int(hard) + 1)
        res = berth("run", "--rm", "--network", "none", "--ulimit", f"nofile={above}", berth.image, "true")
        if not _has_cap("SYS_RESOURCE"):
            assert res.returncode == 125 and "setrlimit" in res.stderr and "nofile" in res.stderr


def inspect_ulimits(berth) -> list:
    cid = berth("create", "--ulimit", "nofile=512:1024", berth.image, "true", check=True).stdout.strip()
    return inspect(berth, cid)["HostConfig"]["Ulimits"]


def _has_cap(name: str) -> bool:
    from berth.core.runtime.capabilities import NUMBERS

    bounding = int(status_field(open("/proc/self/status").read(), "CapBnd"), 16)
    return bool(bounding & (1 << NUMBERS[name]))


def test_sysctl_oom_score_and_groups(berth):
    out = inside(berth, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmni=1000",
                 "--oom-score-adj", "500", "--group-add", "4242", "--group-add", "app", "-u", "1000",
                 berth.image, "sh", "-c",
                 "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/self/oom_score_adj; id -G")
    forward, shmmni, score, groups = out.splitlines()
    assert (forward, shmmni, score) == ("1", "1000", "500")
    assert set(groups.split()) == {"1000", "4242"}
    # an interface's own sysctl: written once the network has given the container its eth0
    out = inside(berth, "--sysctl", "net.ipv4.conf.eth0.rp_filter=2", berth.image, "cat",
                 "/proc/sys/net/ipv4/conf/eth0/rp_filter", network="bridge")
    assert out == "2\n"


def test_security_opt_no_new_privileges_and_seccomp(berth):
    status = inside(berth, berth.image, "cat", "/proc/self/status")
    assert status_field(status, "NoNewPrivs") == "0"  # Docker's default
    assert status_field(status, "Seccomp") == "2"
    status = inside(berth, "--security-opt", "no-new-privileges", berth.image, "cat", "/proc/self/status")
    assert status_field(status, "NoNewPrivs") == "1"
    status = inside(berth, "--security-opt", "no-new-privileges=false", "--security-opt", "seccomp=unconfined",
                    berth.image, "cat", "/proc/self/status")
    assert status_field(status, "NoNewPrivs") == "0" and status_field(status, "Seccomp") == "0"
    res = berth("run", "--rm", "--network", "none", "--security-opt", "label=disable", "--security-opt",
                "apparmor=unconfined", berth.image, "true")
    assert res.returncode == 0 and res.stderr.count("WARNING:") == 2, res.stderr


def test_seccomp_profile_file(berth, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    res = berth("run", "--rm", "--network", "none", "--security-opt", f"seccomp={profile}", berth.image,
                "mkdir", "/tmp/x")
    assert res.returncode == 1 and "Operation not permitted" in res.stderr
    assert inside(berth, "--security-opt", f"seccomp={profile}", berth.image, "echo", "ok") == "ok\n"
    # conditions on arguments (64-bit compares), errnoRet: kill(2) by the signal number
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 255, "valueTwo": 15, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 30, "op": "SCMP_CMP_GT"}]}]}))
    out = inside(berth, "--security-opt", f"seccomp={profile}", berth.image, "sh", "-c",
                 'trap "echo usr2" USR2; trap "echo hup" HUP; trap "echo term" TERM; kill -USR2 $$; '
                 "kill -USR1 $$ 2>&1; kill -TERM $$ 2>&1; kill -HUP $$; kill -31 $$ 2>&1; true")
    assert out.splitlines() == ["usr2", "sh: can't kill pid 1: Permission denied",
                                "sh: can't kill pid 1: Operation not permitted", "hup",
                                "sh: can't kill pid 1: Operation not permitted"]


def test_setuid_programs_work_with_user(berth):
    # an image whose busybox is setuid root and whose root has no password: `su` works for user 1000
    cid = berth("run", "--network", "none", berth.image, "sh", "-c",
                "chmod 4755 /bin/busybox && sed -i 's/^root:x:/root::/' /etc/passwd", check=True)
    assert cid.returncode == 0
    ref = berth("ps", "-lq", check=True).stdout.strip()
    berth("commit", ref, "suid:1", check=True)
    assert inside(berth, "-u", "1000", "suid:1", "su", "-c", "id -u", "root").strip() == "0"
    res = berth("run", "--rm", "--network", "none", "-u", "1000", "--security-opt", "no-new-privileges",
                "suid:1", "su", "-c", "id -u", "root")
    assert res.stdout.strip() != "0"


def test_cap_add_all_and_privileged(berth):
    host = status_field(open("/proc/self/status").read(), "CapBnd")
    status = inside(berth, "--cap-add", "ALL", berth.image, "cat", "/proc/self/status")
    assert status_field(status, "CapEff") == host
    out = inside(berth, "--privileged", "--cap-drop", "NET_RAW", berth.image, "sh", "-c",
                 "grep -E '^(CapEff|Seccomp):' /proc/self/status; test -c /dev/fuse && echo fuse; "
                 "grep -c ' /sys sysfs rw' /proc/mounts; grep -c ' /proc/kcore ' /proc/mounts; true")
    assert status_field(out, "CapEff") == host and status_field(out, "Seccomp") == "0"
    assert out.splitlines()[2:] == ["fuse", "1", "0"]


def test_device_and_device_cgroup_rule(berth):
    out = inside(berth, "--device", "/dev/fuse:/dev/myfuse", berth.image, "sh", "-c",
                 "ls -l /dev/myfuse; exec 3<>/dev/myfuse && echo opened")
    assert out.startswith("crw") and re.search(r"10, +229", out) and out.endswith("opened\n")
    out = inside(berth, "--device", "/dev/fuse:/opt/fuse:rw", berth.image, "sh", "-c",
                 "test -c /opt/fuse && exec 3<>/opt/fuse && echo opened")
    assert out == "opened\n"  # a node outside /dev lands in the root filesystem, as runc's
    script = "mknod /tmp/f c 10 229 && (exec 3<>/tmp/f) 2>/dev/null && echo opened || echo refused"
    assert inside(berth, berth.image, "sh", "-c", script) == "refused\n"
    assert inside(berth, "--device-cgroup-rule", "c 10:229 rwm", berth.image, "sh", "-c", script) == "opened\n"
    res = berth("run", "--rm", "--device", "/dev/nonexistent", berth.image, "true")
    assert res.returncode == 125
    assert "error gathering device information while adding custom device \"/dev/nonexistent\"" in res.stderr


def test_cgroup_flags_and_the_read_only_cgroup_mount(berth):
    out = inside(berth, "--cpu-shares", "512", "--cpuset-cpus", "0", "--memory-reservation", "64m",
                 "--oom-kill-disable", "-m", "128m", berth.image, "sh", "-c",
                 "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus "
                 "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes; "
                 "grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control; "
                 "touch /sys/fs/cgroup/memory/x 2>/dev/null && echo writable || echo read-only; "
                 "grep memory /proc/self/cgroup")
    shares, cpus, soft, oom, writable, cgroup = out.splitlines()
    assert (shares, cpus, soft, oom) == ("512", "0", str(64 << 20), "oom_kill_disable 1")
    assert writable == "read-only"
    assert cgroup.endswith(":memory:/")  # its own cgroup namespace
    out = inside(berth, "--security-opt", "writable-cgroups", berth.image, "sh", "-c",
                 "echo 1 > /sys/fs/cgroup/memory/memory.oom_control && echo writable")
    assert out == "writable\n"


# -- namespaces and init --------------------------------------------------------------


def test_pid_ipc_uts_cgroupns_host(berth):
    out = inside(berth, "--pid", "host", "--ipc", "host", "--uts", "host", "--cgroupns", "host", "--userns", "host",
                 berth.image, "sh", "-c", f"{NAMESPACES} pid ipc uts cgroup; hostname")
    assert out.split() == [host_ns("pid"), host_ns("ipc"), host_ns("uts"), host_ns("cgroup"), os.uname().nodename]
    out = inside(berth, berth.image, "sh", "-c", f"{NAMESPACES} pid ipc; echo $$")
    pid_ns, ipc_ns, pid = out.split()
    assert pid_ns != host_ns("pid") and ipc_ns != host_ns("ipc") and pid == "1"
    out = inside(berth, "--ipc", "none", berth.image, "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts; true")
    assert out == "0\n"  # --ipc none: no /dev/shm, as Docker's


def test_joining_another_container_s_namespaces(berth, ids):
    cid = berth("run", "-d", "--network", "none", "--name", "first", "--ipc", "shareable", berth.image, "sh", "-c",
                "echo from-first > /dev/shm/note; exec sleep 60", check=True).stdout.strip()
    ids.append(cid)
    pid = inspect(berth, cid)["State"]["Pid"]
    out = inside(berth, "--pid", "container:first", "--ipc", "container:first", berth.image, "sh", "-c",
                 f"{NAMESPACES} pid ipc; cat /proc/1/comm /dev/shm/note")
    pid_ns, ipc_ns, comm, note = out.split()
    assert pid_ns == os.readlink(f"/proc/{pid}/ns/pid") and ipc_ns == os.readlink(f"/proc/{pid}/ns/ipc")
    assert comm == "sleep" and note == "from-first"  # its /dev/shm too
    private = berth("run", "-d", "--network", "none", berth.image, "sleep", "60", check=True).stdout.strip()
    ids.append(private)
    res = berth("run", "--rm", "--ipc", f"container:{private}", berth.image, "true")
    assert res.returncode == 125
    assert f"container {private}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in res.stderr
    berth("rm", "-f", cid, check=True)
    assert str(berth.runroot) not in open("/proc/mounts").read()  # its /dev/shm is gone with it
    res = berth("run", "--rm", "--pid", "container:nothere", berth.image, "true")
    assert res.returncode == 125 and "No such container: nothere" in res.stderr


def test_init_is_pid_1_reaps_and_forwards_signals(berth, ids):
    out = inside(berth, "--init", berth.image, "sh", "-c", "cat /proc/1/comm; echo $$")
    comm, shell_pid = out.split()
    assert comm == "docker-init" and shell_pid != "1"
    assert inspect(berth, berth("create", "--init", berth.image, "true", check=True).stdout.strip())["HostConfig"]["Init"]
    # a zombie left by an exited grandchild is reaped by the init
    out = inside(berth, "--init", berth.image, "sh", "-c",
                 "(sleep 0.1 &) ; sleep 0.5; ps -o stat,comm | grep -c '^Z' || true")
    assert out.strip() == "0"
    # SIGTERM from `stop` reaches the command through the init: it stops at once
    cid = berth("run", "-d", "--init", "--network", "none", berth.image, "sleep", "60", check=True).stdout.strip()
    ids.append(cid)
    started = time.monotonic()
    berth("stop", cid, check=True)
    assert time.monotonic() - started < 5
    assert inspect(berth, cid)["State"]["ExitCode"] == 143
    assert "docker-init" not in berth("diff", cid, check=True).stdout  # its mount point is not the container's change


# -- the primary network's endpoint: --ip, --network-alias, --mac-address ----------------


def test_ip_alias_and_mac_address_on_a_user_network(berth, ids):
    berth("network", "create", "flagsnet", check=True)
    subnet = json.loads(berth("network", "inspect", "flagsnet", check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
    address = subnet.rsplit(".", 1)[0] + ".50"
    mac = "02:42:ac:11:00:99"
    cid = berth("run", "-d", "--network", "flagsnet", "--name", "web", "--ip", address, "--network-alias", "db-alias",
                "--mac-address", mac, berth.image, "sleep", "60", check=True).stdout.strip()
    ids.append(cid)
    endpoint = inspect(berth, cid)["NetworkSettings"]["Networks"]["flagsnet"]
    assert endpoint["IPAddress"] == address and endpoint["MacAddress"] == mac
    assert endpoint["IPAMConfig"] == {"IPv4Address": address} and "db-alias" in endpoint["Aliases"]
    seen = berth("exec", cid, "ip", "addr", "show", "eth0", check=True).stdout
    assert f"inet {address}/" in seen and f"link/ether {mac}" in seen
    # a peer on the network reaches it by its alias
    out = inside(berth, berth.image, "sh", "-c", "grep db-alias /etc/hosts; ping -c 1 -W 2 db-alias >/dev/null && "
                                                  "echo reached", network="flagsnet")
    assert out.startswith(f"{address}\t") and out.endswith("reached\n")
    taken = berth("run", "--rm", "--network", "flagsnet", "--ip", address, berth.image, "true")
    assert taken.returncode == 125 and "Address already in use" in taken.stderr
    for argv, message in [
        (["--ip", "10.99.0.5"], "user specified IP address is supported on user defined networks only"),
        (["--network-alias", "x"], "network-scoped aliases are only supported for user-defined networks"),
        (["--mac-address", "zz"], "zz is not a valid mac address"),
        (["--network", "flagsnet", "--ip", "192.0.2.1"], "no configured subnet or ip-range contain the IP address "
                                                         "192.0.2.1"),
    ]:
        res = berth("create", *argv, berth.image, "true")
        assert res.returncode == 125 and message in res.stderr, (argv, res.stderr)


def test_exec_runs_with_the_container_s_settings(berth, ids):
    cid = berth("run", "-d", "--network", "none", "-h", "box", "--security-opt", "no-new-privileges", "--ulimit",
                "nofile=256", "--group-add", "4242", berth.image, "sleep", "60", check=True).stdout.strip()
    ids.append(cid)
    out = berth("exec", cid, "sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; ulimit -n; "
                                         "echo $HOSTNAME; id -G", check=True).stdout
    assert status_field(out, "NoNewPrivs") == "1" and status_field(out, "Seccomp") == "2"
    assert out.splitlines()[2:] == ["256", "box", "0 4242"]
    host = status_field(open("/proc/self/status").read(), "CapBnd")
    out = berth("exec", "--privileged", cid, "cat", "/proc/self/status", check=True).stdout
    assert status_field(out, "CapEff") == host and status_field(out, "Seccomp") == "0"
