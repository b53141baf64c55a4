"""run/create flag values as Docker's CLI and daemon check them (berth.core.containers.hostconfig)."""

import pytest

from berth.core.containers import hostconfig as hc
from berth.core.errors import InvalidArgument


def refused(fn, *args, **kw) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args, **kw)
    return info.value.message


def test_add_host():
    assert hc.extra_host("db:10.0.0.2") == "db:10.0.0.2"
    assert hc.extra_host("db=10.0.0.2") == "db:10.0.0.2"
    assert hc.extra_host("v6=[::1]") == "v6:::1"
    assert hc.extra_host("v6:::1") == "v6:::1"
    assert hc.extra_host("gw:host-gateway") == "gw:host-gateway"
    assert refused(hc.extra_host, "db") == 'invalid argument "db" for "--add-host" flag: bad format for add-host: "db"'
    assert refused(hc.extra_host, "db:nope") == \
        'invalid argument "db:nope" for "--add-host" flag: invalid IP address in add-host: "nope"'


def test_dns_and_search():
    assert hc.dns_server("1.1.1.1") == "1.1.1.1"
    assert refused(hc.dns_server, "one") == \
        'invalid argument "one" for "--dns" flag: IP address is not correctly formatted: one'
    assert hc.dns_search("example.com") == "example.com"
    assert hc.dns_search(".") == "."
    assert "is not a valid domain" in refused(hc.dns_search, "-bad-")


def test_ulimit():
    assert hc.ulimit("nofile=1024:2048") == {"Name": "nofile", "Hard": 2048, "Soft": 1024}
    assert hc.ulimit("nproc=64") == {"Name": "nproc", "Hard": 64, "Soft": 64}
    assert hc.ulimit("core=-1") == {"Name": "core", "Hard": -1, "Soft": -1}
    assert refused(hc.ulimit, "nofile") == 'invalid argument "nofile" for "--ulimit" flag: invalid ulimit argument: nofile'
    assert refused(hc.ulimit, "files=1").endswith("invalid ulimit type: files")
    assert refused(hc.ulimit, "nofile=20:10").endswith(
        "ulimit soft limit must be less than or equal to hard limit: 20 > 10")


def test_device_and_rules():
    assert hc.device("/dev/null") == {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null",
                                      "CgroupPermissions": "rwm"}
    assert hc.device("/dev/null:/dev/mine:r")["PathInContainer"] == "/dev/mine"
    assert hc.device("/dev/null:rw")["CgroupPermissions"] == "rw"
    assert refused(hc.device, "/dev/null:rel") == \
        'invalid argument "/dev/null:rel" for "--device" flag: rel is not an absolute path'
    assert refused(hc.device, "/dev/null:/x:rx").endswith("bad mode specified: rx")
    assert hc.device_cgroup_rule("c 1:3 rwm") == "c 1:3 rwm"
    assert hc.device_cgroup_rule("b *:* m") == "b *:* m"
    assert refused(hc.device_cgroup_rule, "x 1:3 rwm").endswith("invalid device cgroup format 'x 1:3 rwm'")


def test_sysctl_namespaced_only():
    assert hc.sysctl("net.ipv4.ip_forward=1") == ("net.ipv4.ip_forward", "1")
    assert hc.sysctl("kernel.shmmax=1000000") == ("kernel.shmmax", "1000000")
    assert hc.sysctl("fs.mqueue.msg_max=20") == ("fs.mqueue.msg_max", "20")
    assert refused(hc.sysctl, "kernel.hostname=x") == \
        'invalid argument "kernel.hostname=x" for "--sysctl" flag: sysctl \'kernel.hostname=x\' is not allowed'
    assert "is not allowed" in refused(hc.sysctl, "vm.swappiness=1")


def test_security_opts(tmp_path):
    assert hc.security_opts(["no-new-privileges"]) == ["no-new-privileges"]
    assert hc.security_settings(["no-new-privileges"])["no_new_privs"] is True
    assert hc.security_settings(["no-new-privileges=false"])["no_new_privs"] is False
    assert hc.security_settings([])["no_new_privs"] is False
    assert hc.security_settings(["seccomp=unconfined"])["seccomp"] == "unconfined"
    assert len(hc.discarded_security_opts(["label=disable", "apparmor=x", "no-new-privileges"])) == 2
    assert hc.security_settings(["writable-cgroups=true"])["writable_cgroups"] is True
    assert refused(hc.security_opts, ["bogus"]) == 'Invalid --security-opt: "bogus"'
    assert refused(hc.security_opts, ["no-new-privileges=maybe"]) == \
        'invalid --security-opt 2: "no-new-privileges=maybe"'
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    assert hc.security_opts([f"seccomp={profile}"]) == ['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']
    assert refused(hc.security_opts, [f"seccomp={tmp_path}/none.json"]).startswith(
        f"opening seccomp profile ({tmp_path}/none.json) failed: open ")


def test_label_file(tmp_path):
    f = tmp_path / "labels"
    f.write_text("\ufeff# comment\na=1\n  b=two words\nbare\n")
    assert hc.read_labels([str(f)], ["a=override", "c"]) == {"a": "override", "b": "two words", "c": ""}
    assert refused(hc.read_labels, [str(tmp_path / "none")], []).startswith(f"open {tmp_path}/none: no such file")


def test_namespace_modes():
    assert hc.namespace_mode("--pid", "host") == "host"
    assert hc.namespace_mode("--pid", "container:web") == "container:web"
    assert hc.namespace_mode("--ipc", "shareable") == "shareable"
    assert refused(hc.namespace_mode, "--pid", "bogus") == "--pid: invalid PID mode"
    assert refused(hc.namespace_mode, "--uts", "container:web") == "--uts: invalid UTS mode"
    assert refused(hc.namespace_mode, "--userns", "private") == "--userns: invalid USER mode"
    assert refused(hc.namespace_mode, "--cgroupns", "x") == "--cgroupns: invalid CGROUP mode"
    assert refused(hc.namespace_mode, "--ipc", "x") == "invalid IPC mode: x"


def test_combinations():
    assert hc.check_combinations({}, {"NetworkMode": "host", "PortBindings": {"80/tcp": []}},
                                 hostname_given=False) == ["Published ports are discarded when using host network mode"]
    assert refused(hc.check_combinations, {}, {"NetworkMode": "container:x"}, hostname_given=True) == \
        "conflicting options: hostname and the network mode"
    assert refused(hc.check_combinations, {}, {"NetworkMode": "container:x", "Dns": ["1.1.1.1"]},
                   hostname_given=False) == "conflicting options: dns and the network mode"
    assert refused(hc.check_combinations, {}, {"UTSMode": "host"}, hostname_given=True) == \
        "conflicting options: hostname and the UTS mode"
    assert refused(hc.check_combinations, {}, {"OomScoreAdj": 1001}, hostname_given=False) == \
        "Invalid value 1001, range for oom score adj is [-1000, 1000]"
    assert refused(hc.check_combinations, {}, {"MemoryReservation": 1024}, hostname_given=False) == \
        "Minimum memory reservation allowed is 6MB"
    assert refused(hc.mac_address, "zz") == "zz is not a valid mac address"
