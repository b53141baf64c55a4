"""Parse `-v`, `--mount`, `--tmpfs`, `--volumes-from` and image VOLUMEs into
a container's mounts (inspect's ``Mounts`` entries), with Docker's errors.

Each entry: Type (bind|volume|tmpfs), Name, Source, Destination, Driver,
Mode, RW, Propagation, plus berth's own keys used at start: Anonymous,
NoCopy, DriverOpts, Options (tmpfs), CreateMountpoint (bind via -v).
"""

from __future__ import annotations

import posixpath

from berth.core.errors import InvalidArgument
from berth.core.plumbing.ids import random_hex
from berth.core.plumbing.units import ram_in_bytes

PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


def _destination(spec: str, path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config for type \"volume\": "
                              f"invalid mount path: '{path}' mount path must be absolute")
    if ".." in path.split("/") or "\x00" in path:
        raise InvalidArgument(f"invalid volume specification: '{spec}': mount path must not contain '..'")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config: destination can't be '/'")
    return clean


def _volume(name: str | None, dest: str, rw: bool, driver: str, mode: str = "", nocopy: bool = False,
            opts: dict | None = None) -> dict:
    anonymous = name is None
    return {
        "Type": "volume", "Name": name or random_hex(32), "Source": "", "Destination": dest,
        "Driver": driver, "Mode": mode or "z", "RW": rw, "Propagation": "",
        "Anonymous": anonymous, "NoCopy": nocopy, "DriverOpts": opts or {},
    }


def _bind(source: str, dest: str, rw: bool, mode: str, propagation: str, create: bool) -> dict:
    return {
        "Type": "bind", "Source": posixpath.normpath(source), "Destination": dest, "Mode": mode, "RW": rw,
        "Propagation": propagation or "rprivate", "CreateMountpoint": create,
    }


def parse_volume(spec: str, driver: str) -> dict:
    """`-v [SOURCE:]DEST[:OPTIONS]`."""
    parts = spec.split(":")
    if len(parts) > 3 or not all(parts[:2]) or spec == "":
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if len(parts) == 1:
        return _volume(None, _destination(spec, parts[0]), True, driver)
    if len(parts) == 2 and not parts[1].startswith("/") and parts[0].startswith("/"):
        source, dest, options = None, parts[0], parts[1]  # "/ctr:ro"
    else:
        source, dest, options = parts[0], parts[1], parts[2] if len(parts) == 3 else ""
    dest = _destination(spec, dest)
    words = [w for w in options.split(",") if w]
    rw, propagation, nocopy = True, "", False
    for w in words:
        if w in ("ro", "rw"):
            rw = w == "rw"
        elif w in PROPAGATIONS:
            propagation = w
        elif w == "nocopy":
            nocopy = True
        elif w in ("z", "Z", "consistent", "cached", "delegated"):
            pass
        else:
            raise InvalidArgument(f"invalid mode: {w}")
    if source is None:
        return _volume(None, dest, rw, driver, options)
    if source.startswith("/"):
        if nocopy:
            raise InvalidArgument(f"invalid volume specification: '{spec}': nocopy is only for named volumes")
        return _bind(source, dest, rw, options, propagation, create=True)
    if source.startswith(".") or "/" in source:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    from berth.core.volumes.volume import check_name

    check_name(source)
    return _volume(source, dest, rw, driver, options, nocopy)


def parse_mount(spec: str, driver: str) -> dict:
    """`--mount type=...,source=...,target=...,readonly,...` with Docker's keys."""
    fields: dict[str, str] = {}
    opts: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key == "volume-opt":
            k, _, v = value.partition("=")
            opts[k] = v
            continue
        if not sep and key not in ("readonly", "ro", "volume-nocopy"):
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid field '{item}' must be a key=value pair")
        fields[key] = value if sep else "true"
    kind = fields.pop("type", "volume")
    source = fields.pop("source", None) or fields.pop("src", None)
    target = fields.pop("target", None) or fields.pop("destination", None) or fields.pop("dst", None)
    if not target:
        raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: target is required")
    readonly = _true(fields.pop("readonly", fields.pop("ro", "false")))
    dest = _destination(spec, target)
    if kind == "bind":
        if not source:
            raise InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute")
        propagation = fields.pop("bind-propagation", "")
        if propagation and propagation not in PROPAGATIONS:
            raise InvalidArgument(f"invalid bind propagation: {propagation}")
        _no_more(fields, spec)
        return _bind(source, dest, not readonly, "", propagation, create=False)
    if kind == "volume":
        nocopy = _true(fields.pop("volume-nocopy", "false"))
        drv = fields.pop("volume-driver", driver)
        _no_more(fields, spec)
        if source:
            from berth.core.volumes.volume import check_name

            check_name(source)
        return _volume(source, dest, not readonly, drv, "", nocopy, opts)
    if kind == "tmpfs":
        if source:
            raise InvalidArgument("invalid mount config for type \"tmpfs\": source must not be specified")
        options = []
        if "tmpfs-size" in fields:
            options.append(f"size={ram_in_bytes(fields.pop('tmpfs-size'))}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={int(fields.pop('tmpfs-mode'), 8):o}")
        _no_more(fields, spec)
        return _tmpfs(dest, options, not readonly)
    raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: invalid mount type: {kind!r}")


def _tmpfs(dest: str, options: list[str], rw: bool = True) -> dict:
    return {"Type": "tmpfs", "Source": "", "Destination": dest, "Mode": "", "RW": rw, "Propagation": "",
            "Options": options}


def parse_tmpfs(spec: str) -> dict:
    """`--tmpfs /path[:opts]`."""
    path, _, options = spec.partition(":")
    dest = _destination(spec, path)
    words = [w for w in options.split(",") if w]
    rw = "ro" not in words
    return _tmpfs(dest, [w for w in words if w not in ("ro", "rw")], rw)


def _true(value: str) -> bool:
    if value.lower() in ("", "1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid boolean value {value!r}")


def _no_more(fields: dict, spec: str) -> None:
    if fields:
        key = next(iter(fields))
        raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{key}' in '{spec}'")


def container_mounts(*, volumes=(), mounts=(), tmpfs=(), volumes_from=(), image_volumes=None,
                     volume_driver: str = "local") -> list[dict]:
    """All mounts of a new container, in Docker's precedence.

    volumes_from: (mounts of the other container, "ro"|"rw"|"") pairs.
    image_volumes: the image config's Volumes; each path not mounted
    otherwise becomes an anonymous volume.
    """
    out: list[dict] = []
    seen: set[str] = set()

    def add(m: dict, explicit: bool = True) -> None:
        if m["Destination"] in seen:
            if explicit:
                raise InvalidArgument(f"Duplicate mount point: {m['Destination']}")
            return
        seen.add(m["Destination"])
        out.append(m)

    for spec in volumes:
        add(parse_volume(spec, volume_driver))
    for spec in mounts:
        add(parse_mount(spec, volume_driver))
    for spec in tmpfs:
        add(parse_tmpfs(spec))
    for other, mode in volumes_from:
        for m in other:
            if m["Type"] == "tmpfs":
                continue
            copy = dict(m)
            if mode:
                copy["RW"] = mode == "rw"
            copy["Anonymous"] = False  # it belongs to the other container
            add(copy, explicit=False)
    for path in sorted(image_volumes or {}):
        if not isinstance(path, str):
            continue
        add(_volume(None, _destination(path, path), True, volume_driver), explicit=False)
    return out


def public(mount: dict) -> dict:
    """The entry as `inspect` prints it (berth's own keys dropped)."""
    keys = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
    return {k: mount[k] for k in keys if k in mount}


def from_flags(engine, *, volumes=(), mounts=(), tmpfs=(), volumes_from=(), volume_driver=None,
               anonymous=()) -> list[dict]:
    """A new container's mounts from `-v`, `--mount`, `--tmpfs` and `--volumes-from`
    specs (the Engine API's Binds, Mounts, Tmpfs and VolumesFrom in the same syntax);
    `anonymous`: paths that get an anonymous volume unless mounted otherwise (the API's Config.Volumes)."""
    if not (volumes or mounts or tmpfs or volumes_from or anonymous):
        return []
    others = []
    for spec in volumes_from:
        ref, _, mode = spec.partition(":")
        others.append((engine.containers.get(ref).mounts, mode))
    return container_mounts(volumes=volumes, mounts=mounts, tmpfs=tmpfs, volumes_from=others,
                            image_volumes={path: {} for path in anonymous} or None,
                            volume_driver=volume_driver or engine.config.get("volumes.driver"))


def with_image_volumes(engine, opts, image) -> None:
    """Image VOLUMEs not mounted otherwise become anonymous volumes in `opts.mounts`."""
    vols = (image.config.get("config") or {}).get("Volumes")
    if not vols:
        return
    explicit = {m["Destination"] for m in opts.mounts}
    driver = opts.host_config.get("VolumeDriver") or engine.config.get("volumes.driver")
    extra = container_mounts(image_volumes={p: {} for p in vols if p not in explicit}, volume_driver=driver)
    opts.mounts = list(opts.mounts) + extra
