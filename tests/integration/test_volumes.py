"""Volumes with real containers: binds, named and anonymous volumes, tmpfs."""

import json
import os
import tarfile

import pytest
from rootfs import make_rootfs_tar


def run(berth, *args, check=True, input=None):
    return berth("run", "--rm", "--network", "none", *args, check=check, input=input)


def mounts_of(berth, name):
    return json.loads(berth("inspect", name, check=True).stdout)[0]["Mounts"]


def test_named_volume_outlives_its_containers(berth):
    image = berth.image
    run(berth, "-v", "data:/data", image, "sh", "-c", "echo kept > /data/f")
    assert run(berth, "-v", "data:/data:ro", image, "cat", "/data/f").stdout == "kept\n"
    ls = berth("volume", "ls", check=True).stdout.splitlines()
    assert ls[0].split() == ["DRIVER", "VOLUME", "NAME"] and ls[1].split() == ["local", "data"]
    info = json.loads(berth("volume", "inspect", "data", check=True).stdout)[0]
    assert info["Driver"] == "local" and info["Scope"] == "local"
    assert open(os.path.join(info["Mountpoint"], "f")).read() == "kept\n"


def test_read_only_refuses_writes(berth, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    proc = run(berth, "-v", f"{host}:/h:ro", berth.image, "sh", "-c", "echo x > /h/f", check=False)
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr
    assert list(host.iterdir()) == []


def test_bind_mount_both_ways_and_missing_source_created(berth, tmp_path):
    host = tmp_path / "made" / "by" / "berth"
    run(berth, "-v", f"{host}:/h", berth.image, "sh", "-c", "echo from-container > /h/out")
    assert (host / "out").read_text() == "from-container\n"
    (host / "in").write_text("from-host\n")
    assert run(berth, "--mount", f"type=bind,source={host},target=/h,readonly", berth.image,
               "cat", "/h/in").stdout == "from-host\n"
    proc = run(berth, "--mount", f"type=bind,source={tmp_path}/absent,target=/h", berth.image, "true", check=False)
    assert proc.returncode == 125 and "bind source path does not exist" in proc.stderr


def image_with_content(berth, tmp_path, name, extra, volumes=None, symlinks=()):
    path = make_rootfs_tar(tmp_path / f"{name}.tar", extra=extra)
    if symlinks:
        with tarfile.open(path, "a") as tar:
            for link, target in symlinks:
                info = tarfile.TarInfo(link)
                info.type = tarfile.SYMTYPE
                info.linkname = target
                tar.addfile(info)
    args = ["import"]
    if volumes:
        args += ["-c", "VOLUME " + json.dumps(volumes)]
    berth(*args, str(path), name, check=True)
    return name


def test_copy_up_fills_a_new_volume_unless_nocopy(berth, tmp_path):
    img = image_with_content(berth, tmp_path, "withconf", {"srv/conf/app.ini": b"[app]\n"})
    assert run(berth, "-v", "conf:/srv/conf", img, "cat", "/srv/conf/app.ini").stdout == "[app]\n"
    assert run(berth, "-v", "bare:/srv/conf:nocopy", img, "ls", "-A", "/srv/conf").stdout == ""
    host = tmp_path / "bindsrc"
    host.mkdir()
    assert run(berth, "-v", f"{host}:/srv/conf", img, "ls", "-A", "/srv/conf").stdout == ""  # a bind never is


def test_image_volume_is_anonymous_and_removed_with_the_container(berth, tmp_path):
    img = image_with_content(berth, tmp_path, "withvol", {"cache/seed": b"seed\n"}, volumes=["/cache"])
    cid = berth("create", "--network", "none", img, "cat", "/cache/seed", check=True).stdout.strip()
    mounts = mounts_of(berth, cid)
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/cache"
    assert berth("start", "-a", cid, check=True).stdout == "seed\n"
    assert berth("volume", "ls", "-q", check=True).stdout.split() == [mounts[0]["Name"]]
    berth("rm", "-v", cid, check=True)
    assert berth("volume", "ls", "-q", check=True).stdout.split() == []
    run(berth, "-v", "/anon", berth.image, "true")  # --rm removes anonymous volumes too
    assert berth("volume", "ls", "-q", check=True).stdout.split() == []


def test_in_use_volume_refused_then_forced(berth):
    cid = berth("create", "--network", "none", "-v", "busy:/b", berth.image, "true", check=True).stdout.strip()
    proc = berth("volume", "rm", "busy")
    assert proc.returncode == 1 and proc.stderr.strip() == f"Error: remove busy: volume is in use - [{cid}]"
    berth("rm", cid, check=True)
    assert berth("volume", "ls", "-q", "-f", "dangling=true", check=True).stdout.split() == ["busy"]
    assert berth("volume", "rm", "busy", check=True).stdout == "busy\n"
    proc = berth("volume", "rm", "busy")
    assert proc.returncode == 1 and proc.stderr.strip() == "Error: No such volume: busy"


def test_tmpfs_leaves_nothing_on_disk(berth):
    out = run(berth, "--tmpfs", "/scratch:size=1m", berth.image, "sh", "-c",
              "echo secret > /scratch/s && grep ' /scratch ' /proc/mounts").stdout
    assert out.startswith("tmpfs /scratch tmpfs") and "size=1024k" in out
    out = run(berth, "--mount", "type=tmpfs,target=/t", berth.image, "grep", " /t ", "/proc/mounts").stdout
    assert out.startswith("tmpfs /t tmpfs")
    found = [os.path.join(d, f) for d, _, fs in os.walk(berth.root) for f in fs if f == "s"]
    assert found == []


def test_volumes_from(berth):
    src = berth("create", "--name", "src", "--network", "none", "-v", "shared:/shared", berth.image, "true",
                check=True).stdout.strip()
    run(berth, "--volumes-from", "src", berth.image, "sh", "-c", "echo hi > /shared/x")
    assert run(berth, "--volumes-from", "src:ro", berth.image, "cat", "/shared/x").stdout == "hi\n"
    proc = run(berth, "--volumes-from", "src:ro", berth.image, "touch", "/shared/y", check=False)
    assert proc.returncode != 0
    berth("rm", src, check=True)


def test_symlinked_mount_point_in_image_cannot_escape(berth, tmp_path):
    img = image_with_content(berth, tmp_path, "evil", {}, symlinks=[("escape", "/../../../../tmp")])
    host = tmp_path / "h"
    host.mkdir()
    (host / "marker").write_text("m")
    # The link is resolved inside the container's root: the bind lands on the
    # container's own /tmp, never on a path of the host.
    out = run(berth, "-v", f"{host}:/escape", img, "cat", "/tmp/marker").stdout
    assert out == "m"
    assert not [l for l in open("/proc/mounts") if str(host) in l]


@pytest.mark.parametrize("spec, message", [
    ("relative:dir", "mount path must be absolute"),
    ("x/y:/d", "invalid volume specification"),
    ("/a:/b:bogus", "invalid mode: bogus"),
])
def test_bad_volume_flags_are_one_line_125(berth, spec, message):
    proc = run(berth, "-v", spec, berth.image, "true", check=False)
    assert proc.returncode == 125 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert berth("ps", "-aq").stdout == ""


def test_nothing_mounted_after_containers_are_gone(berth):
    berth("run", "-d", "--name", "v1", "--network", "none", "-v", "keep:/k", berth.image, "sleep", "60", check=True)
    berth("rm", "-f", "v1", check=True)
    assert not [l for l in open("/proc/mounts") if str(berth.root) in l]
