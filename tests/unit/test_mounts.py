import pytest

from berth.core.containers.mounts import container_mounts, parse_mount, parse_tmpfs, parse_volume, public
from berth.core.errors import InvalidArgument


def test_bind_read_only():
    m = parse_volume("/srv/data:/data:ro", "local")
    assert public(m) == {"Type": "bind", "Source": "/srv/data", "Destination": "/data", "Mode": "ro", "RW": False,
                         "Propagation": "rprivate"}
    assert m["CreateMountpoint"] is True


def test_named_volume_and_nocopy():
    m = parse_volume("cache:/var/cache:nocopy", "local")
    assert (m["Type"], m["Name"], m["Destination"], m["RW"], m["NoCopy"], m["Anonymous"]) == \
        ("volume", "cache", "/var/cache", True, True, False)


def test_anonymous_volume():
    m = parse_volume("/scratch", "local")
    assert m["Type"] == "volume" and m["Anonymous"] and len(m["Name"]) == 64


@pytest.mark.parametrize("spec, message", [
    ("/a:relative", "invalid mode: relative"),
    ("x:y", "mount path must be absolute"),
    ("bad/name:/x", "invalid volume specification"),
    ("/a:/b:/c:/d", "invalid volume specification"),
    ("/a:/", "destination can't be '/'"),
    ("/a:/x/../../etc", "must not contain '..'"),
    ("/a:/b:bogus", "invalid mode: bogus"),
])
def test_bad_volume_specs(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_volume(spec, "local")


def test_mount_flag_keys():
    m = parse_mount("type=bind,source=/srv,target=/data,readonly", "local")
    assert (m["Type"], m["Source"], m["Destination"], m["RW"], m["CreateMountpoint"]) == ("bind", "/srv", "/data", False, False)
    v = parse_mount("type=volume,src=v1,dst=/v,volume-nocopy,volume-opt=type=tmpfs,volume-opt=device=tmpfs", "local")
    assert v["Name"] == "v1" and v["NoCopy"] and v["DriverOpts"] == {"type": "tmpfs", "device": "tmpfs"}
    t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", "local")
    assert t["Options"] == ["size=1048576", "mode=1770"]


@pytest.mark.parametrize("spec, message", [
    ("type=bind,target=/x", "field Source must not be empty"),
    ("type=nfs,target=/x", "invalid mount type"),
    ("type=volume,source=v", "target is required"),
    ("type=volume,target=/x,color=red", "unexpected key 'color'"),
    ("type=tmpfs,source=x,target=/t", "source must not be specified"),
])
def test_bad_mount_flags(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_mount(spec, "local")


def test_tmpfs_flag():
    t = parse_tmpfs("/run:size=64m,noexec")
    assert t["Destination"] == "/run" and t["Options"] == ["size=64m", "noexec"] and t["RW"]


def test_duplicates_refused_and_image_volumes_fill_in():
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /data"):
        container_mounts(volumes=["/a:/data", "vol:/data"])
    ms = container_mounts(volumes=["vol:/data"], image_volumes={"/data": {}, "/logs": {}})
    assert [(m["Destination"], m["Anonymous"]) for m in ms] == [("/data", False), ("/logs", True)]


def test_hostile_image_volume_paths_refused():
    with pytest.raises(InvalidArgument):
        container_mounts(image_volumes={"/../../etc": {}})


def test_volumes_from_inherits_and_can_force_read_only():
    other = container_mounts(volumes=["vol:/data", "/srv:/srv"])
    ms = container_mounts(volumes_from=[(other, "ro")])
    assert [(m["Destination"], m["RW"]) for m in ms] == [("/data", False), ("/srv", False)]
