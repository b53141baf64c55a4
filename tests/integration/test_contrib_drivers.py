"""berth's contrib drivers from the command line, as their users see them.

Each contrib driver is its own distribution (contrib/berth-*), installed
beside berth as a third party's plugin is (CI: .ci/run); the conformance
suites of tests/conformance run their drivers with berth's own, and
tests/conformance/test_contrib_installed.py checks that they are
installed. Here: a container on fuse-overlayfs, a size-limited loop volume.
Every test leaves no mount, loop device or fuse-overlayfs process behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from harness import wait_for

from berth.testing.support import loop_devices_under, mounts_under


def _fuse_overlayfs_processes() -> set[int]:
    """PIDs of live (not zombie) fuse-overlayfs processes."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if comm == "fuse-overlayfs" and state != "Z":
            found.add(int(entry.name))
    return found


def test_a_container_runs_on_fuse_overlayfs(berth):
    before = _fuse_overlayfs_processes()
    berth.storage_driver = "fuse-overlayfs"  # berth --storage-driver fuse-overlayfs ...
    try:
        info = berth("info", check=True).stdout
        assert "Storage Driver: fuse-overlayfs\n" in info and "Mount Program: /usr/bin/fuse-overlayfs" in info
        run = berth("run", "--name", "btfo", "--network", "none", berth.image, "sh", "-c",
                    "grep -c ' / fuse.fuse-overlayfs ' /proc/mounts; mkdir /new; echo made > /new/f; rm /bin/ls")
        assert run.returncode == 0, run.stderr
        assert run.stdout == "1\n"  # its root is the fuse-overlayfs union
        diff = berth("diff", "btfo", check=True).stdout.splitlines()
        assert {"C /bin", "D /bin/ls", "A /new", "A /new/f"} <= set(diff)
        [inspect] = json.loads(berth("inspect", "btfo", check=True).stdout)
        assert inspect["GraphDriver"]["Name"] == "fuse-overlayfs"
        upper = Path(inspect["GraphDriver"]["Data"]["UpperDir"])
        assert (upper / "new/f").read_text() == "made\n"

        berth("commit", "btfo", "btfo-image", check=True)
        again = berth("run", "--rm", "--network", "none", "btfo-image", "sh", "-c",
                      "cat /new/f; ls /bin/ls 2>&1; id -u > /tmp/x && cat /tmp/x")
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == ["made", "ls: /bin/ls: No such file or directory", "0"]
        berth("rm", "btfo", check=True)
        berth("rmi", "btfo-image", check=True)
        assert not mounts_under(berth.root / "fuse-overlayfs")
    finally:
        berth.cleanup()
    # unmounted: every fuse-overlayfs this test started has exited
    wait_for(lambda: not (_fuse_overlayfs_processes() - before), what="fuse-overlayfs processes to exit")


def test_a_loop_volume_holds_its_size_and_frees_its_loop_device(berth):
    try:
        assert berth("volume", "create", "-d", "loop", "-o", "size=8m", "btloop", check=True).stdout == "btloop\n"
        [volume] = json.loads(berth("volume", "inspect", "btloop", check=True).stdout)
        assert (volume["Driver"], volume["Options"]) == ("loop", {"size": "8m"})
        assert not loop_devices_under(berth.root)  # mounted only while in use

        full = berth("run", "--rm", "--network", "none", "-v", "btloop:/data", berth.image, "sh", "-c",
                     "echo kept > /data/f; dd if=/dev/zero of=/data/big bs=1M count=16")
        assert full.returncode != 0
        assert "No space left on device" in full.stderr
        assert not loop_devices_under(berth.root)

        berth("run", "-d", "--name", "btuser", "--network", "none", "--mount",
              "type=volume,src=btloop,dst=/data,volume-driver=loop", berth.image, "sleep", "600", check=True)
        assert len(loop_devices_under(berth.root)) == 1
        seen = berth("exec", "btuser", "sh", "-c", "cat /data/f; df -k /data | tail -1", check=True).stdout.split()
        assert seen[0] == "kept" and 6000 < int(seen[2]) <= 8192  # its own 8 MiB filesystem
        berth("rm", "-f", "btuser", check=True)
        assert not loop_devices_under(berth.root)

        bad = berth("volume", "create", "-d", "loop", "-o", "size=lots", "btloop2")
        assert (bad.returncode, bad.stderr) == (125, "Error: invalid size 'lots': must be a number of bytes with an "
                                                     "optional k, m, g or t suffix\n")
        berth("volume", "rm", "btloop", check=True)
        assert not os.path.exists(volume["Mountpoint"])
        assert berth("volume", "ls", "-q", check=True).stdout == ""
    finally:
        berth.cleanup()
        assert not mounts_under(berth.root)
        assert not loop_devices_under(berth.root)


def test_containers_on_a_macvlan_network_reach_each_other(berth):
    """network create -d macvlan -o parent=: two containers talk over the parent's layer 2;
    -p is refused, a parent the host lacks is one line; nothing is left on the host."""
    import secrets
    import subprocess

    img = berth.image
    tag = secrets.token_hex(3)
    parent, peer = f"btp{tag}", f"btq{tag}"
    subprocess.run(["ip", "link", "add", parent, "type", "veth", "peer", "name", peer], check=True)
    try:
        for link in (parent, peer):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        bad = berth("network", "create", "-d", "macvlan", "-o", f"parent=nx{tag}", "lan")
        assert bad.returncode == 125 and bad.stderr == f"Error: -o parent interface was not found on the host: nx{tag}\n"
        berth("network", "create", "-d", "macvlan", "-o", f"parent={parent}", "--subnet", "10.231.77.0/24", "lan",
              check=True)
        options = json.loads(berth("network", "inspect", "lan", check=True).stdout)[0]["Options"]
        assert options == {"parent": parent, "macvlan_mode": "bridge"}
        refused = berth("run", "--rm", "--network", "lan", "-p", "8080:80", img, "true")
        assert refused.returncode == 125 and len(refused.stderr.splitlines()) == 1
        berth("run", "-d", "--name", "web", "--network", "lan", "--ip", "10.231.77.10", img,
              "sh", "-c", "echo hello from macvlan > /index.html; exec httpd -f -p 80 -h /", check=True)
        out = berth("run", "--rm", "--network", "lan", img, "sh", "-c",
                    "ip -o link show eth0; timeout 5 wget -q -O - http://10.231.77.10/")
        assert out.returncode == 0, out.stderr
        assert "macvlan" in out.stdout or "@if" in out.stdout
        assert out.stdout.endswith("hello from macvlan\n")
        berth("rm", "-f", "web", check=True)
        berth("network", "rm", "lan", check=True)
        left = subprocess.run(["ip", "-o", "link", "show", "type", "macvlan"], capture_output=True, text=True).stdout
        assert f"@{parent}" not in left  # no macvlan link left on the host
    finally:
        subprocess.run(["ip", "link", "del", parent], check=False)


def _local_records(path: Path) -> list[dict]:
    """Docker's local format, decoded here independently of the driver: each record a protobuf
    LogEntry (source=1, time_nano=2, line=3, partial=4) with its big-endian length before and after."""
    import struct

    def varint(data, pos):
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    data, pos, records = path.read_bytes(), 0, []
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        assert struct.unpack_from(">I", data, pos + 4 + n) == (n,)
        body, fields, p = data[pos + 4:pos + 4 + n], {}, 0
        while p < len(body):
            key, p = varint(body, p)
            if key & 7 == 2:
                size, p = varint(body, p)
                fields[key >> 3], p = body[p:p + size], p + size
            else:
                fields[key >> 3], p = varint(body, p)
        records.append(fields)
        pos += 8 + n
    return records


def test_the_local_log_driver_writes_dockers_format_and_berth_logs_reads_it(berth):
    img = berth.image
    cid = berth("run", "--name", "talker", "--log-driver", "local", "--log-opt", "max-size=1k", "--log-opt",
                "max-file=3", "-d", img, "sh", "-c", "for i in $(seq 1 100); do echo line $i; done; echo oops >&2; "
                "printf 'no newline'", check=True).stdout.strip()
    wait_for(lambda: berth("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited")
    logs = berth("logs", "talker", check=True)
    out = logs.stdout.splitlines()
    assert out[-2:] == ["line 100", "no newline"] and logs.stderr == "oops\n"
    assert len(out) < 101 and out == [f"line {i}" for i in range(101 - len(out) + 1, 101)] + ["no newline"]
    tail = berth("logs", "--tail", "3", "-t", "talker", check=True)  # line 100, oops, no newline
    assert [line.split(" ", 1)[1] for line in tail.stdout.split("\n")] == ["line 100", "no newline"]
    assert tail.stderr.endswith(" oops\n")
    directory = Path(berth.root) / "containers" / cid
    files = sorted(p.name for p in directory.glob("container.log*"))
    assert files == ["container.log", "container.log.1", "container.log.2"]  # rotated, max-file kept
    records = _local_records(directory / "container.log")
    assert records[-1][1] == b"stdout" and records[-1][3] == b"no newline" and records[-1][4] == 1
    oops = next(r for r in records if r[3] == b"oops")
    assert oops[1] == b"stderr" and 4 not in oops and abs(oops[2] / 1e9 - time.time()) < 120
    bad = berth("run", "--rm", "--log-driver", "local", "--log-opt", "colour=red", img, "true")
    assert bad.returncode == 125 and bad.stderr == "Error: unknown log opt 'colour' for local log driver\n"
    berth("rm", "talker", check=True)


def test_oci_layout_transport_round_trips_with_skopeo(berth, tmp_path):
    """push IMAGE oci:DIR:TAG is read by skopeo and umoci; a layout skopeo wrote is pulled and runs."""
    import subprocess

    img = berth.image
    layout = tmp_path / "layout"
    out = berth("push", img, f"oci:{layout}:v1", check=True).stdout.splitlines()
    digest = out[-1].split()[2]
    seen = json.loads(subprocess.run(["skopeo", "inspect", f"oci:{layout}:v1"], check=True, capture_output=True,
                                     text=True).stdout)
    assert seen["Digest"] == digest
    assert "v1" in subprocess.run(["umoci", "ls", "--layout", str(layout)], check=True, capture_output=True,
                                  text=True).stdout
    # the other way: skopeo writes a layout from berth's docker-archive; berth pulls and runs it
    archive = tmp_path / "image.tar"
    berth("save", "-o", str(archive), img, check=True)
    theirs = tmp_path / "Their-Images"
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{archive}", f"oci:{theirs}:stable"], check=True)
    pulled = berth("pull", f"oci:{theirs}:stable", check=True).stdout.splitlines()
    assert pulled[0] == "stable: Pulling from their-images" and pulled[-1] == "localhost/their-images:stable"
    assert berth("run", "--rm", "localhost/their-images:stable", "echo", "from a layout",
                 check=True).stdout == "from a layout\n"
    # berth's own layout gives the image its name back
    berth("rmi", "-f", img, check=True)
    assert berth("pull", "-q", f"oci:{layout}:v1", check=True).stdout.strip() == "docker.io/library/busybox:v1"
    for bad, words in ((f"oci:{layout}:nope", f"no image tagged 'nope' in the OCI layout {layout}"),
                       (f"oci:{tmp_path}/none:v1", f"{tmp_path}/none is not a directory")):
        res = berth("pull", bad)
        assert res.returncode == 1 and res.stderr == f"Error: manifest unknown: {words}\n"
    refused = berth("push", "localhost/their-images:stable", "nosuch:/x")
    assert refused.returncode == 125 and len(refused.stderr.splitlines()) == 1
