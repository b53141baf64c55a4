"""`berth cp` through the container's mounts, running or stopped, with Docker's rules for
symlinks, trailing slashes and `-` tar streams (issue #11)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time

import pytest
from harness import BERTH


def cp(berth, *argv, **kw):
    return berth("cp", *argv, **kw)


def exec_out(berth, name, *argv) -> str:
    return berth("exec", name, *argv, check=True).stdout


def wait_running(berth, name):
    deadline = time.monotonic() + 20
    while berth("exec", name, "true").returncode != 0:
        assert time.monotonic() < deadline, f"{name} never ran"
        time.sleep(0.1)


@pytest.fixture
def mounted(berth, tmp_path):
    """A container with a bind mount, a named volume and an anonymous volume."""
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "b.txt").write_text("in the bind mount\n")
    berth("run", "-d", "--name", "mnt", "--network", "none", "-v", f"{bind}:/bind", "-v", "named:/vol",
          "-v", "/anon", berth.image, "sh", "-c",
          "echo in the volume > /vol/v.txt; echo anonymous > /anon/a.txt; touch /ready; sleep 1000", check=True)
    deadline = time.monotonic() + 20
    while berth("exec", "mnt", "test", "-f", "/ready").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return bind


@pytest.mark.parametrize("state", ["running", "stopped"])
def test_cp_reads_and_writes_through_every_mount(berth, tmp_path, mounted, state):
    bind = mounted
    if state == "stopped":
        berth("stop", "-t", "0", "mnt", check=True)
    out = tmp_path / "out"
    out.mkdir()
    for path, text in (("/bind/b.txt", "in the bind mount\n"), ("/vol/v.txt", "in the volume\n"),
                       ("/anon/a.txt", "anonymous\n")):
        cp(berth, f"mnt:{path}", str(out), check=True)
        assert (out / os.path.basename(path)).read_text() == text, path
    for name in ("hosts", "resolv.conf", "hostname"):
        cp(berth, f"mnt:/etc/{name}", str(out / name), check=True)
        assert (out / name).read_text(), f"/etc/{name} came out empty"
    assert (out / "hostname").read_text().strip() == berth("inspect", "-f", "{{.Config.Hostname}}", "mnt",
                                                           check=True).stdout.strip()
    new = tmp_path / "new.txt"
    new.write_text(f"copied in while {state}\n")
    for directory in ("/bind", "/vol", "/anon"):
        cp(berth, str(new), f"mnt:{directory}/", check=True)
    assert (bind / "new.txt").read_text() == f"copied in while {state}\n"
    if state == "stopped":
        berth("start", "mnt", check=True)
        wait_running(berth, "mnt")
    for directory in ("/bind", "/vol", "/anon"):
        assert exec_out(berth, "mnt", "cat", f"{directory}/new.txt") == f"copied in while {state}\n", directory
    # the files went into the mounts, not into the container's layer under them
    diff = berth("diff", "mnt", check=True).stdout
    assert "new.txt" not in diff, diff


def test_cp_follows_docker_rules_for_links_and_slashes(berth, tmp_path):
    berth("run", "-d", "--name", "lnk", "--network", "none", berth.image, "sh", "-c",
          "mkdir -p /d/sub; echo one > /d/one; echo two > /d/sub/two; echo target > /tmp/target;"
          " ln -s /tmp/target /tofile; ln -s /d /todir; ln -s / /toroot; ln -s ../../../etc /escape;"
          " touch /ready; sleep 1000", check=True)
    wait_running(berth, "lnk")
    src = tmp_path / "src.txt"
    src.write_text("from the host\n")
    # a link as destination is resolved inside the container and written through, never replaced
    cp(berth, str(src), "lnk:/tofile", check=True)
    assert exec_out(berth, "lnk", "readlink", "/tofile") == "/tmp/target\n"
    assert exec_out(berth, "lnk", "cat", "/tmp/target") == "from the host\n"
    cp(berth, str(src), "lnk:/todir", check=True)
    assert exec_out(berth, "lnk", "cat", "/d/src.txt") == "from the host\n"
    cp(berth, str(src), "lnk:/escape/planted", check=True)
    assert not os.path.exists("/etc/planted")
    assert exec_out(berth, "lnk", "cat", "/etc/planted") == "from the host\n"
    # a link as source is copied as a link; -L copies what it points to, under the link's name
    cp(berth, "lnk:/tofile", str(tmp_path / "as-link"), check=True)
    assert os.readlink(tmp_path / "as-link") == "/tmp/target"
    cp(berth, "-L", "lnk:/tofile", str(tmp_path / "followed"), check=True)
    assert (tmp_path / "followed").read_text() == "from the host\n"
    # trailing slashes and /.
    cp(berth, "lnk:/d", str(tmp_path / "copy"), check=True)  # a new name: the directory itself
    assert sorted(os.listdir(tmp_path / "copy")) == ["one", "src.txt", "sub"]
    cp(berth, "lnk:/d", str(tmp_path / "copy"), check=True)  # an existing directory: into it
    assert (tmp_path / "copy" / "d" / "sub" / "two").read_text() == "two\n"
    (tmp_path / "contents").mkdir()
    cp(berth, "lnk:/d/.", str(tmp_path / "contents"), check=True)
    assert sorted(os.listdir(tmp_path / "contents")) == ["one", "src.txt", "sub"]
    cp(berth, "lnk:/todir/", str(tmp_path / "via-link"), check=True)  # a trailing slash follows the link
    assert (tmp_path / "via-link" / "one").read_text() == "one\n"
    p = cp(berth, "lnk:/d/one/", str(tmp_path / "x"))
    assert p.returncode == 1 and "not a directory" in p.stderr and "Traceback" not in p.stderr
    p = cp(berth, str(src), "lnk:/nowhere/")
    assert p.returncode == 1 and "no such directory" in p.stderr
    p = cp(berth, "lnk:/d", str(src))
    assert p.returncode == 1 and "cannot copy directory" in p.stderr
    p = cp(berth, "lnk:/nope", str(tmp_path / "x"))
    assert p.returncode == 1 and "Could not find the file /nope in container lnk" in p.stderr
    p = cp(berth, str(tmp_path / "nope"), "lnk:/tmp")
    assert p.returncode == 1 and "no such file or directory" in p.stderr


def test_cp_dash_streams_tar(berth, tmp_path):
    berth("run", "-d", "--name", "tar", "--network", "none", "-v", "tv:/vol", berth.image, "sh", "-c",
          "mkdir /vol/dir; echo x > /vol/dir/x; touch /ready; sleep 1000", check=True)
    wait_running(berth, "tar")
    out = subprocess.run(BERTH + berth.args() + ["cp", "tar:/vol/dir", "-"], capture_output=True, env=berth.env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as t:
        assert sorted(t.getnames()) == ["dir", "dir/x"]
        assert t.extractfile("dir/x").read() == b"x\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"streamed\n"
        info = tarfile.TarInfo("in/streamed.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    p = berth("cp", "-", "tar:/vol", input=buf.getvalue())
    assert p.returncode == 0, p.stderr
    assert exec_out(berth, "tar", "cat", "/vol/in/streamed.txt") == "streamed\n"
    assert exec_out(berth, "tar", "stat", "-c", "%u:%g", "/vol/in/streamed.txt") == "0:0\n"
    p = berth("cp", "-", "tar:/vol/dir/x", input=buf.getvalue())
    assert p.returncode == 1 and b'destination "tar:/vol/dir/x" must be a directory' in p.stderr


def test_cp_into_read_only_places_says_so(berth, tmp_path):
    src = tmp_path / "f.txt"
    src.write_text("f\n")
    berth("run", "-d", "--name", "ro", "--network", "none", "--read-only", "-v", "rov:/data:ro",
          "-v", "rw:/rw", berth.image, "sleep", "1000", check=True)
    wait_running(berth, "ro")
    p = cp(berth, str(src), "ro:/")
    assert p.returncode == 1 and "container rootfs is marked read-only" in p.stderr, p.stderr
    p = cp(berth, str(src), "ro:/data/")
    assert p.returncode == 1 and "mounted volume is marked read-only" in p.stderr, p.stderr
    cp(berth, str(src), "ro:/rw/", check=True)
    berth("stop", "-t", "0", "ro", check=True)
    p = cp(berth, str(src), "ro:/")
    assert p.returncode == 1 and "container rootfs is marked read-only" in p.stderr, p.stderr


def test_cp_of_a_running_containers_root_leaves_out_proc_and_sys(berth, tmp_path):
    berth("run", "-d", "--name", "whole", "--network", "none", berth.image, "sleep", "1000", check=True)
    wait_running(berth, "whole")
    out = tmp_path / "root"
    cp(berth, "whole:/", str(out), check=True)
    assert (out / "bin" / "busybox").is_file() and (out / "etc" / "hosts").read_text()
    assert not (out / "proc").exists() and not (out / "sys").exists()
