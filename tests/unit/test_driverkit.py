"""berth.core.driverkit, the helpers drivers build with: names, mountinfo,
the cross-process counter, host routes, and a cheap import."""

from __future__ import annotations

import ipaddress
import subprocess
import sys

import pytest

from berth.core import driverkit
from berth.core.errors import InvalidArgument


@pytest.mark.parametrize("id,name", [("sha256:" + "a" * 64, "sha256-" + "a" * 64), ("C", "C"), ("bt-1.x_y", "bt-1.x_y")])
def test_layer_dir_name(id, name):
    assert driverkit.layer_dir_name(id) == name


@pytest.mark.parametrize("id", ["", "..", "a/b", "../x", "/abs", "a..b", ".hidden", "x" * 201, None])
def test_layer_ids_that_could_leave_home_are_refused(id):
    with pytest.raises(InvalidArgument):
        driverkit.layer_dir_name(id)


def test_check_name_says_it_in_dockers_words():
    assert driverkit.check_name("data-1.x") == "data-1.x"
    for bad in ["", ".", "..", "a/b", "-x", "a b", "\x00"]:
        with pytest.raises(InvalidArgument) as err:
            driverkit.check_name(bad, "tmpfs volume", hint="Use a plain name")
        assert str(err.value) == (f'"{bad}" includes invalid characters for a tmpfs volume name, only '
                                  '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. Use a plain name')


def test_mountinfo_is_parsed_with_its_escapes(tmp_path, monkeypatch):
    info = tmp_path / "mountinfo"
    info.write_text("22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                    "40 22 0:35 / /srv/with\\040space rw shared:20 master:1 - tmpfs tmpfs rw\n"
                    "41 40 0:36 / /srv/with\\040space/inner rw - overlay overlay rw\n")
    monkeypatch.setattr(driverkit, "MOUNTINFO", info)
    assert driverkit.mounts() == [("/", "ext4"), ("/srv/with space", "tmpfs"), ("/srv/with space/inner", "overlay")]
    assert driverkit.is_mounted("/srv/with space") and not driverkit.is_mounted("/srv")
    assert driverkit.mounts_under("/srv/with space") == ["/srv/with space/inner", "/srv/with space"]


COUNT = """
import sys
from berth.core import driverkit
for _ in range(200):
    with driverkit.locked_counter(sys.argv[1]) as count:
        count[0] += 1
"""


def test_locked_counter_is_shared_between_processes(tmp_path):
    path = tmp_path / "mounts"
    procs = [subprocess.Popen([sys.executable, "-c", COUNT, str(path)]) for _ in range(4)]
    assert [p.wait() for p in procs] == [0] * 4
    with driverkit.locked_counter(path) as count:
        assert count[0] == 800
        count[0] = -3
    assert path.read_text() == "0"  # never below 0


def test_write_atomic_replaces_whole(tmp_path):
    path = tmp_path / "f"
    driverkit.write_atomic(path, b"one")
    driverkit.write_atomic(path, b"two")
    assert path.read_bytes() == b"two" and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_host_routes_overlap(tmp_path, monkeypatch):
    routes = tmp_path / "route"
    routes.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
                      "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"  # default: ignored
                      "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")  # 192.168.0.0/24
    monkeypatch.setattr(driverkit, "PROC_ROUTES", routes)
    assert driverkit.host_routes_overlap(ipaddress.ip_network("192.168.0.128/25"))
    assert not driverkit.host_routes_overlap(ipaddress.ip_network("10.9.0.0/24"))


def test_importing_it_loads_no_layer_or_network_code():
    code = ("import sys; from berth.core import driverkit; "
            "print(sorted(m for m in ('tarfile', 'subprocess', 'berth.core.oci.archive', 'zlib') "
            "if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
