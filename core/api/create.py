"""POST /containers/create: Docker's Config/HostConfig/NetworkingConfig ->
berth's CreateOptions, in one table.

Every field of Docker's API 1.43 is listed in FIELDS. A field berth
supports has a function that puts its value where `berth create`'s flag
puts it; a field berth does not support yet has None: its zero value (and
the values in HARMLESS, which mean what berth does anyway) pass, anything
else is a 400 naming the field, never silently dropped. Adding a flag to
berth (issue 12: --restart, --dns ...) means giving its field a function
here.
"""

from __future__ import annotations

from berth.core.api.server import bad_request, json_type

ZERO = (None, "", 0, False, [], {})


def _set(key, kind=None):
    """The value goes to CreateOptions' `key` (checked against `kind`)."""
    def apply(values, value, where):
        if value is not None:
            values[key] = _typed(value, kind, where)
    return apply


def _typed(value, kind, where):
    if kind is None or value is None:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        name = {str: "string", int: "int64", bool: "bool", list: "[]string", dict: "map[string]string"}.get(kind)
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type {name}")
    return value


def _strings(value, where) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type []string")
    return list(value)


def _string_map(value, where) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
                          "map[string]string")
    return dict(value)


def _cmd(values, value, where):
    values["command"] = _strings(value, where)


def _entrypoint(values, value, where):
    entry = _strings(value, where)
    values["entrypoint"] = entry if value is not None else None


def _env(values, value, where):
    if isinstance(value, str):  # Env is a []string (Cmd and Entrypoint take a string too)
        raise bad_request(f"json: cannot unmarshal string into Go struct field {where} of type []string")
    values["env"] = _strings(value, where)


def _labels(values, value, where):
    values["labels"] = _string_map(value, where)


def _attach(stream):
    def apply(values, value, where):
        if _typed(value, bool, where):
            values.setdefault("attach", []).append(stream)
    return apply


def _exposed(values, value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type nat.PortSet")
    values["expose"] = list(value)


def _volumes(values, value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
                          "map[string]struct {}")
    values["anonymous"] = list(value)  # an anonymous volume unless Binds or Mounts cover the path


def _binds(values, value, where):
    values.setdefault("volumes", []).extend(_strings(value, where))


def _mounts(values, value, where):
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type []mount.Mount")
    out = values.setdefault("mounts", [])
    for m in value:
        kind = (m.get("Type") or "volume").lower()
        parts = [f"type={kind}"]
        if m.get("Source"):
            parts.append(f"source={m['Source']}")
        if not m.get("Target"):
            raise bad_request("Invalid mount config: Target must not be empty")
        parts.append(f"target={m['Target']}")
        if m.get("ReadOnly"):
            parts.append("readonly")
        if kind == "bind" and (m.get("BindOptions") or {}).get("Propagation"):
            parts.append(f"bind-propagation={m['BindOptions']['Propagation']}")
        if kind == "volume" and (m.get("VolumeOptions") or {}).get("NoCopy"):
            parts.append("volume-nocopy")
        if kind == "tmpfs":
            options = m.get("TmpfsOptions") or {}
            if options.get("SizeBytes"):
                parts.append(f"tmpfs-size={options['SizeBytes']}")
            if options.get("Mode"):
                parts.append(f"tmpfs-mode={options['Mode']:o}")
        out.append(",".join(parts))


def _tmpfs(values, value, where):
    for path, options in _string_map(value, where).items():
        values.setdefault("tmpfs", []).append(f"{path}:{options}" if options else path)


def _volumes_from(values, value, where):
    values["volumes_from"] = _strings(value, where)


def _port_bindings(values, value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type nat.PortMap")
    for port, bindings in value.items():
        for b in bindings or [{}]:
            if not isinstance(b, dict):
                raise bad_request(f"json: cannot unmarshal {json_type(b)} into Go struct field {where} of type "
                                  "nat.PortBinding")
            ip, host_port = b.get("HostIp") or "", b.get("HostPort") or ""
            if ip in ("0.0.0.0", "::"):
                ip = ""
            spec = f"{ip}:{host_port}:{port}" if ip else f"{host_port}:{port}" if host_port else port
            values.setdefault("publish", []).append(spec)


def _restart(values, value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
                          "container.RestartPolicy")
    name = value.get("Name") or "no"
    count = value.get("MaximumRetryCount") or 0
    values["restart"] = f"{name}:{count}" if name == "on-failure" and count else name


def _healthcheck(values, value, where):
    """Config.Healthcheck: checked as Docker's daemon checks it (berth.core.containers.health)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
                          "container.HealthConfig")
    from berth.core.containers import health

    values["healthcheck"] = health.validate(value)


def _log_config(values, value, where):
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
                          "container.LogConfig")
    if value.get("Type"):
        values["log_driver"] = value["Type"]
    values["log_opts"] = _string_map(value.get("Config"), where + ".Config")


def _network_mode(values, value, where):
    value = _typed(value, str, where)
    values["network"] = None if value in (None, "", "default") else value


def _nano_cpus(values, value, where):
    value = _typed(value, int, where)
    if value:
        values["cpus"] = value / 1e9


def _positive(key):
    def apply(values, value, where):
        value = _typed(value, int, where)
        if value:
            values[key] = value
    return apply


def cpu_from_quota(quota, period) -> float:
    """CpuQuota over CpuPeriod (default 100 ms) as a number of CPUs (what NanoCpus and --cpus say)."""
    if not isinstance(quota, int) or quota < 1000 or (period is not None and not isinstance(period, int)):
        raise bad_request("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    return quota / (period or 100000)


def _cpu_quota(values, value, where):
    value = _typed(value, int, where)
    if value and value > 0:
        values["_quota"] = value


def _cpu_period(values, value, where):
    value = _typed(value, int, where)
    if value:
        values["_period"] = value


def _pids_limit(values, value, where):
    value = _typed(value, int, where)
    if value:
        values["pids_limit"] = value


def _console_size(values, value, where):
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value) and any(value):
        values["console_size"] = (value[0], value[1])


def _flag(dest, render=str):
    """A field `berth run`'s flag --DEST sets (berth.core.containers.hostconfig checks it as the CLI's):
    the value goes back to the flag's text form, so both are checked by one parser."""
    def apply(values, value, where):
        if value in ZERO:
            return
        multiple = dest in _MULTIPLE
        try:
            if isinstance(value, list) != multiple or isinstance(value, (dict, bool)):
                raise TypeError(value)
            values.setdefault("_flags", {})[dest] = [render(item) for item in value] if multiple else render(value)
        except (TypeError, KeyError, AttributeError, ValueError):
            raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where}") from None
    return apply


_MULTIPLE = {"dns", "dns_search", "dns_option", "add_host", "device", "device_cgroup_rule", "ulimit",
             "security_opt", "group_add", "sysctl"}


def _ulimit(item) -> str:
    return f"{item['Name']}={item['Soft']}:{item['Hard']}"


def _device(item) -> str:
    return f"{item['PathOnHost']}:{item.get('PathInContainer') or item['PathOnHost']}:" \
           f"{item.get('CgroupPermissions') or 'rwm'}"


def _security_opt(item: str) -> str:
    key, value = (item.split("=", 1) if "=" in item else item.split(":", 1) if ":" in item else (item, ""))
    if key == "seccomp" and value not in ("unconfined", "builtin") and not value.lstrip().startswith("{"):
        # Docker's clients send the profile's JSON, never a path on the daemon's host
        raise bad_request(f"Decoding seccomp profile failed: invalid character '{value[:1]}' looking for "
                          "beginning of value")
    return item


def _paths(dest):
    """MaskedPaths/ReadonlyPaths: absent or null keeps Docker's defaults, a list (even empty) replaces them."""
    def apply(values, value, where):
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field {where} "
                                  "of type []string")
            values.setdefault("_flags", {})[dest] = list(value)
    return apply


def _sysctls(values, value, where):
    for key, item in _string_map(value, where).items():
        values.setdefault("_flags", {}).setdefault("sysctl", []).append(f"{key}={item}")


def _init(values, value, where):
    if _typed(value, bool, where):
        values.setdefault("_flags", {})["init"] = True


def _bool_flag(dest):
    def apply(values, value, where):
        if _typed(value, bool, where):
            values.setdefault("_flags", {})[dest] = True
    return apply


def _ignored(values, value, where):
    """Carries no behaviour for berth (a name, a file the client writes, what the image has anyway)."""


# What berth does anyway: these values of unsupported fields pass.
HARMLESS = {
    "HostConfig.MemorySwappiness": (-1,),
    "HostConfig.Isolation": ("default",),
    "HostConfig.Runtime": ("berth", "runc"),
    "Config.ArgsEscaped": (True,),
}

FIELDS = {
    "Config": {
        "Hostname": _set("hostname", str), "Domainname": None, "User": _set("user", str),
        "AttachStdin": _attach("stdin"), "AttachStdout": _attach("stdout"), "AttachStderr": _attach("stderr"),
        "ExposedPorts": _exposed, "Tty": _set("tty", bool), "OpenStdin": _set("interactive", bool),
        "StdinOnce": _ignored,  # follows OpenStdin and attaching, as `berth run -i`
        "Env": _env, "Cmd": _cmd, "Healthcheck": _healthcheck, "ArgsEscaped": None, "Image": _ignored,
        "Volumes": _volumes, "WorkingDir": _set("workdir", str), "Entrypoint": _entrypoint,
        "NetworkDisabled": None, "MacAddress": _flag("mac_address"), "OnBuild": None, "Labels": _labels,
        "StopSignal": _set("stop_signal", str), "StopTimeout": _set("stop_timeout", int), "Shell": _ignored,
    },
    "HostConfig": {
        "CpuShares": _flag("cpu_shares", int), "Memory": _positive("memory"), "CgroupParent": None, "BlkioWeight": None,
        "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": _cpu_period, "CpuQuota": _cpu_quota,
        "CpuRealtimePeriod": None, "CpuRealtimeRuntime": None, "CpusetCpus": _flag("cpuset_cpus"), "CpusetMems": None,
        "Devices": _flag("device", _device), "DeviceCgroupRules": _flag("device_cgroup_rule"), "DeviceRequests": None, "KernelMemory": None,
        "KernelMemoryTCP": None, "MemoryReservation": _flag("memory_reservation"), "MemorySwap": _positive("memory_swap"),
        "MemorySwappiness": None, "NanoCpus": _nano_cpus, "OomKillDisable": _bool_flag("oom_kill_disable"), "Init": _init,
        "PidsLimit": _pids_limit, "Ulimits": _flag("ulimit", _ulimit), "CpuCount": None, "CpuPercent": None, "IOMaximumIOps": None,
        "IOMaximumBandwidth": None, "Binds": _binds, "ContainerIDFile": _ignored, "LogConfig": _log_config,
        "NetworkMode": _network_mode, "PortBindings": _port_bindings, "RestartPolicy": _restart,
        "AutoRemove": _set("auto_remove", bool), "VolumeDriver": _flag("volume_driver"), "VolumesFrom": _volumes_from,
        "Mounts": _mounts, "ConsoleSize": _console_size, "Annotations": None, "CapAdd": _set("cap_add", list),
        "CapDrop": _set("cap_drop", list), "CgroupnsMode": _flag("cgroupns"), "Dns": _flag("dns"), "DnsOptions": _flag("dns_option"),
        "DnsSearch": _flag("dns_search"), "ExtraHosts": _flag("add_host"), "GroupAdd": _flag("group_add"), "IpcMode": _flag("ipc"), "Cgroup": None,
        "Links": _set("links", list), "OomScoreAdj": _flag("oom_score_adj", int), "PidMode": _flag("pid"), "Privileged": _bool_flag("privileged"),
        "PublishAllPorts": _set("publish_all", bool), "ReadonlyRootfs": _set("read_only", bool),
        "SecurityOpt": _flag("security_opt", _security_opt), "StorageOpt": None, "Tmpfs": _tmpfs, "UTSMode": _flag("uts"), "UsernsMode": _flag("userns"),
        "ShmSize": _positive("shm_size"), "Sysctls": _sysctls, "Runtime": None, "Isolation": None,
        "MaskedPaths": _paths("masked_paths"), "ReadonlyPaths": _paths("readonly_paths"),
    },
}


def create_values(body: dict, name: str | None) -> tuple[str, dict, dict]:
    """(image, CreateOptions keyword values, NetworkingConfig.EndpointsConfig) of a create body."""
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise bad_request("No image was specified" if not image else
                          f"json: cannot unmarshal {json_type(image)} into Go struct field Config.Image of type string")
    values: dict = {"name": name or None, "command": [], "env": [], "labels": {}}
    host_config = body.get("HostConfig")
    host_config = {} if host_config is None else host_config
    if not isinstance(host_config, dict):
        raise bad_request(f"json: cannot unmarshal {json_type(host_config)} into Go struct field "
                          "ContainerConfigWrapper.HostConfig of type container.HostConfig")
    for section, source in (("Config", body), ("HostConfig", host_config)):
        for key, value in source.items():
            if section == "Config" and key in ("HostConfig", "NetworkingConfig"):
                continue
            if key not in FIELDS[section]:
                continue  # not a field of Docker's API: Docker's decoder ignores it too
            apply, where = FIELDS[section][key], f"{section}.{key}"
            if apply is None:
                if value in ZERO or value in HARMLESS.get(where, ()):
                    continue
                raise bad_request(f"berth does not support {where} (got {value!r}) yet")
            apply(values, value, where)
    quota, period = values.pop("_quota", None), values.pop("_period", None)
    if quota:
        if values.get("cpus"):
            raise bad_request("Conflicting options: Nano CPUs and CPU Period cannot both be set")
        values["cpus"] = cpu_from_quota(quota, period)
    values["detach"] = not values.get("attach")  # nothing attached: what `run -d` creates
    flags = values.pop("_flags", {})
    mac = flags.pop("mac_address", None)
    endpoints = ((body.get("NetworkingConfig") or {}) if isinstance(body.get("NetworkingConfig"), dict) else {}) \
        .get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict) or not all(isinstance(v, dict) or v is None for v in endpoints.values()):
        raise bad_request("json: cannot unmarshal into Go struct field NetworkingConfig.EndpointsConfig")
    values["host_config"] = flags
    values["endpoint"] = _endpoint(endpoints.pop(values.get("network") or "default", None)
                                   or (endpoints.popitem()[1] if len(endpoints) == 1 and not values.get("network")
                                       else None), mac)
    return image, values, endpoints


def _endpoint(settings: dict | None, mac: str | None) -> dict:
    """The primary network's EndpointSettings (what --ip, --network-alias, --mac-address set)."""
    settings = settings or {}
    out = {}
    address = (settings.get("IPAMConfig") or {}).get("IPv4Address")
    if address:
        out["IPAMConfig"] = {"IPv4Address": address}
    if settings.get("Aliases"):
        out["Aliases"] = _strings(settings["Aliases"], "EndpointSettings.Aliases")
    if mac or settings.get("MacAddress"):
        out["MacAddress"] = mac or settings["MacAddress"]
    if settings.get("Links") or settings.get("DriverOpts") or (settings.get("IPAMConfig") or {}).get("IPv6Address"):
        raise bad_request("berth does not support EndpointSettings Links, DriverOpts or IPv6Address yet")
    return out
