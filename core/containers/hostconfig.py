"""The run/create flags that become HostConfig fields, checked as Docker checks them.

Each parser takes what the user typed and returns what inspect shows
(HostConfig.ExtraHosts, Ulimits, Devices, SecurityOpt, Sysctls ...), or
raises InvalidArgument with Docker's message: the CLI's own
`invalid argument "X" for "--flag" flag: ...` for a malformed value, the
daemon's text for a combination it refuses. `check_combinations` returns
the warnings Docker prints for combinations it accepts. `from_flags` makes
the HostConfig fields of run/create's flag values; `process_settings` turns
HostConfig into the runtime's ProcessSpec arguments (capabilities, seccomp,
no_new_privs, groups, rlimits) for a container's first process and every
exec; the monitor (containers.monitor.host_spec) makes the rest of its spec.
"""

from __future__ import annotations

import json
import os
import re

from berth.core.errors import InvalidArgument
from berth.core.runtime.proc import oom_score_adj_floor
from berth.core.runtime.rlimits import NUMBERS as ULIMITS

# The namespaced sysctls Docker accepts (opts.ValidateSysctl).
_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
            "kernel.shmmni", "kernel.shm_rmid_forced")
_SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
_DEVICE_RULE = re.compile(r"^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_DOMAIN = re.compile(r"^(:?(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])"
                     r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))*)\.?\s*$")


def bad_value(value: str, flag: str, why: str) -> InvalidArgument:
    """The CLI's message for a flag value it cannot take."""
    return InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {why}')


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address in canonical form (opts.ValidateIPAddress)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {value}") from None


def extra_host(value: str) -> str:
    """--add-host NAME:IP or NAME=IP (IPv6 in brackets allowed) -> "NAME:IP"."""
    key, sep, address = value.partition("=")
    if not sep:
        key, sep, address = value.partition(":")
    if not sep or not key or ":" in key:
        raise bad_value(value, "--add-host", f'bad format for add-host: "{value}"')
    if address != "host-gateway":
        if len(address) > 2 and address[0] == "[" and address[-1] == "]":
            address = address[1:-1]
        try:
            ip_address(address)
        except ValueError:
            raise bad_value(value, "--add-host", f'invalid IP address in add-host: "{address}"') from None
    return f"{key}:{address}"


def dns_server(value: str) -> str:
    try:
        return ip_address(value)
    except ValueError as exc:
        raise bad_value(value, "--dns", str(exc)) from None


def dns_search(value: str) -> str:
    value = value.strip(" ")
    if value == ".":
        return value
    match = _DOMAIN.match(value) if re.search(r"[a-zA-Z]", value) else None
    if not match or len(match.group(1)) >= 255:
        raise bad_value(value, "--dns-search", f"{value} is not a valid domain")
    return match.group(1)


def ulimit(value: str) -> dict:
    """--ulimit NAME=SOFT[:HARD] -> {"Name", "Hard", "Soft"} (go-units ParseUlimit)."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise bad_value(value, "--ulimit", f"invalid ulimit argument: {value}")
    if name not in ULIMITS:
        raise bad_value(value, "--ulimit", f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise bad_value(value, "--ulimit", f"too many limit value arguments - {limits}, can only have up to two, "
                                           "`soft[:hard]`")
    try:
        numbers = [int(p, 10) for p in parts]
    except ValueError:
        raise bad_value(value, "--ulimit", f'strconv.ParseInt: parsing "{limits}": invalid syntax') from None
    soft, hard = numbers[0], numbers[-1]
    if hard != -1:
        if soft == -1:
            raise bad_value(value, "--ulimit", "ulimit soft limit must be less than or equal to hard limit: "
                                               f"soft: -1 (unlimited), hard: {hard}")
        if soft > hard:
            raise bad_value(value, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: "
                                               f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def _device_mode(mode: str) -> bool:
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def device(value: str) -> dict:
    """--device HOST[:CONTAINER][:PERMISSIONS] -> a DeviceMapping."""
    parts = value.split(":")
    if len(parts) > 3 or not parts[0]:
        raise bad_value(value, "--device", f"bad format for path: {value}")
    host, container, mode = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _device_mode(parts[1]):
            mode = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, mode = parts[1], parts[2]
        if not _device_mode(mode):
            raise bad_value(value, "--device", f"bad mode specified: {mode}")
    if not container.startswith("/"):
        raise bad_value(value, "--device", f"{container} is not an absolute path")
    return {"PathOnHost": host, "PathInContainer": os.path.normpath(container), "CgroupPermissions": mode}


def device_cgroup_rule(value: str) -> str:
    if not _DEVICE_RULE.match(value):
        raise bad_value(value, "--device-cgroup-rule", f"invalid device cgroup format '{value}'")
    return value


def sysctl(value: str) -> tuple[str, str]:
    """--sysctl KEY=VALUE, namespaced keys only (opts.ValidateSysctl)."""
    key, sep, setting = value.partition("=")
    if sep and key and (key in _SYSCTLS or key.startswith(_SYSCTL_PREFIXES)):
        return key, setting
    raise bad_value(value, "--sysctl", f"sysctl '{value}' is not allowed")


def security_opts(values) -> list[str]:
    """--security-opt as Docker's CLI and daemon check it; a seccomp profile
    file is read here and kept as its compact JSON (as Docker sends it); a
    value that is a JSON object is the profile itself (the API's form)."""
    out = []
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep and key not in ("no-new-privileges", "writable-cgroups"):
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key not in ("no-new-privileges", "writable-cgroups"):
            raise InvalidArgument(f"Invalid --security-opt: {json.dumps(opt)}")
        if key in ("no-new-privileges", "writable-cgroups") and sep and value.lower() not in _BOOLS:
            raise InvalidArgument(f"invalid --security-opt 2: {json.dumps(opt)}")
        if key not in ("no-new-privileges", "seccomp", "apparmor", "label", "systempaths", "writable-cgroups"):
            raise InvalidArgument(f"invalid --security-opt 2: {json.dumps(opt)}")
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                if value.lstrip().startswith("{"):  # the profile itself, as Docker's API carries it
                    profile = json.loads(value)
                else:
                    with open(value, "rb") as f:
                        profile = json.loads(f.read())
            except OSError as exc:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: open {value}: "
                                      f"{exc.strerror.lower()}") from None
            except ValueError as exc:
                raise InvalidArgument(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
            opt = "seccomp=" + json.dumps(profile, separators=(",", ":"))
            from berth.core.runtime.seccomp import compile_profile

            try:
                compile_profile(opt[8:], 0)
            except (ValueError, TypeError, KeyError) as exc:
                raise InvalidArgument(f"invalid seccomp profile ({value}): {exc}") from None
        out.append(opt)
    return out


def _absolute_paths(paths, field: str) -> list[str] | None:
    """HostConfig.MaskedPaths/ReadonlyPaths (the API's only): None keeps the defaults."""
    if paths is None:
        return None
    for path in paths:
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid {field} {path!r}: must be an absolute path")
    return list(paths)


_BOOLS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def security_settings(opts: list[str]) -> dict:
    """What the runtime makes of HostConfig.SecurityOpt: no_new_privs (bool),
    seccomp ("default", "unconfined" or a profile's JSON text),
    systempaths_unconfined and writable_cgroups (label and apparmor options
    are accepted and discarded: discarded_security_opts warns)."""
    out = {"no_new_privs": False, "seccomp": "default", "systempaths_unconfined": False, "writable_cgroups": False}
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        if not sep and key not in ("no-new-privileges", "writable-cgroups"):
            key, sep, value = opt.partition(":")
        if key == "no-new-privileges":
            out["no_new_privs"] = _BOOLS[value.lower()] if sep else True
        elif key == "seccomp":
            out["seccomp"] = "default" if value == "builtin" else value
        elif key == "systempaths":
            out["systempaths_unconfined"] = value == "unconfined"
        elif key == "writable-cgroups":
            out["writable_cgroups"] = _BOOLS[value.lower()] if sep else True
    return out


def read_labels(files, labels) -> dict[str, str]:
    """--label-file files then --label values (opts.ReadKVStrings): KEY=VALUE
    lines, # comments; a label file line without "=" is dropped, a --label KEY
    is an empty value."""
    lines = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise InvalidArgument(f"open {path}: {(exc.strerror or str(exc)).lower()}") from None
        except UnicodeDecodeError:
            raise InvalidArgument(f"invalid env file ({path}): invalid utf8 bytes") from None
        for line in text.removeprefix("\ufeff").splitlines():
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            key, sep, _ = line.partition("=")
            if not key:
                raise InvalidArgument(f"invalid env file ({path}): no variable name on line '{line}'")
            if " " in key or "\t" in key:
                raise InvalidArgument(f"invalid env file ({path}): variable '{key}' contains whitespaces")
            if sep:
                lines.append(line)
    out = {}
    for item in [*lines, *labels]:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f'invalid argument "{item}" for "--label" flag')
        out[key] = value
    return out


# flag -> (valid modes, container:NAME allowed, Docker's message)
_NAMESPACE_MODES = {
    "--pid": (("", "host"), True, "--pid: invalid PID mode"),
    "--ipc": (("", "host", "private", "shareable", "none"), True, "invalid IPC mode: {}"),
    "--uts": (("", "host"), False, "--uts: invalid UTS mode"),
    "--userns": (("", "host"), False, "--userns: invalid USER mode"),
    "--cgroupns": (("", "host", "private"), False, "--cgroupns: invalid CGROUP mode"),
}


def namespace_mode(flag: str, value: str | None) -> str:
    """--pid/--ipc/--uts/--userns/--cgroupns as Docker's modes' Valid()."""
    value = value or ""
    modes, joins, message = _NAMESPACE_MODES[flag]
    if value in modes or (joins and value.startswith("container:") and value != "container:"):
        return value
    raise InvalidArgument(message.format(value))


def mac_address(value: str) -> str:
    if not _MAC.match(value.strip()):
        raise InvalidArgument(f"{value} is not a valid mac address")
    return value.strip()


def check_combinations(config: dict, host_config: dict, *, hostname_given: bool, image_ports=()) -> list[str]:
    """Docker's refusals (raised) and warnings (returned) for combinations of flags."""
    mode = host_config.get("NetworkMode") or ""
    if mode.startswith("container:"):
        if hostname_given:
            raise InvalidArgument("conflicting options: hostname and the network mode")
        if host_config.get("Dns"):
            raise InvalidArgument("conflicting options: dns and the network mode")
        if host_config.get("ExtraHosts"):
            raise InvalidArgument("conflicting options: custom host-to-IP mapping and the network mode")
        if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
            raise InvalidArgument("conflicting options: port publishing and the container type network mode")
        if set(config.get("ExposedPorts") or ()) - set(image_ports):  # the image's own EXPOSE is no conflict
            raise InvalidArgument("conflicting options: port exposing and the container type network mode")
        if config.get("MacAddress"):
            raise InvalidArgument("conflicting options: mac-address and the network mode")
    if host_config.get("UTSMode") == "host" and hostname_given:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    for key in host_config.get("Sysctls") or {}:  # never the host's own settings (runc's checks)
        if key.startswith("net.") and mode == "host":
            raise InvalidArgument(f'sysctl "{key}" not allowed in host network namespace')
        if not key.startswith("net.") and host_config.get("IpcMode") == "host":
            raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
    if mode in ("host", "none") and config.get("MacAddress"):
        raise InvalidArgument("conflicting options: mac-address and the network mode")
    score = host_config.get("OomScoreAdj") or 0
    if not -1000 <= score <= 1000:
        raise InvalidArgument(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    if (host_config.get("CpuShares") or 0) < 0:
        raise InvalidArgument(f"invalid CPU shares ({host_config['CpuShares']}): value must be a positive integer")
    reservation, memory = host_config.get("MemoryReservation") or 0, host_config.get("Memory") or 0
    if reservation and reservation < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory and reservation and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
    warnings = []
    floor = oom_score_adj_floor()
    if floor is not None and score < floor:
        warnings.append(f"berth lacks CAP_SYS_RESOURCE on this host: OomScoreAdj {score} is below its own "
                        f"oom_score_adj ({floor}), which the container keeps")
    if mode == "host" and host_config.get("PortBindings"):
        warnings.append("Published ports are discarded when using host network mode")
    if host_config.get("OomKillDisable") and cgroup_v2():
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        host_config["OomKillDisable"] = False
    if host_config.get("OomKillDisable") and not memory:
        warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can result "
                        "in the system running out of resources.")
    return warnings


def from_flags(kw: dict) -> dict:
    """The HostConfig fields these flags set (Docker's names), each value checked.

    `kw`: the run/create flag values by dest (berth.core.cli.run's tables)."""
    from berth.core.plumbing.units import ram_in_bytes

    sysctls = dict(sysctl(v) for v in kw.get("sysctl") or ())
    host = {
        "ExtraHosts": [extra_host(v) for v in kw.get("add_host") or ()] or None,
        "Dns": [dns_server(v) for v in kw.get("dns") or ()],
        "DnsSearch": [dns_search(v) for v in kw.get("dns_search") or ()],
        "DnsOptions": list(kw.get("dns_option") or ()),
        "Privileged": bool(kw.get("privileged")),
        "Init": True if kw.get("init") else None,
        "Devices": [device(v) for v in kw.get("device") or ()],
        "DeviceCgroupRules": [device_cgroup_rule(v) for v in kw.get("device_cgroup_rule") or ()] or None,
        "Ulimits": list({u["Name"]: u for u in map(ulimit, kw.get("ulimit") or ())}.values()) or None,
        "SecurityOpt": security_opts(kw.get("security_opt") or ()) or None,
        "MaskedPaths": _absolute_paths(kw.get("masked_paths"), "MaskedPaths"),
        "ReadonlyPaths": _absolute_paths(kw.get("readonly_paths"), "ReadonlyPaths"),
        "GroupAdd": list(kw.get("group_add") or ()) or None,
        "ContainerIDFile": kw.get("cidfile") or "",
        "Sysctls": sysctls or None,
        "PidMode": namespace_mode("--pid", kw.get("pid")),
        "IpcMode": namespace_mode("--ipc", kw.get("ipc")) or "private",
        "UTSMode": namespace_mode("--uts", kw.get("uts")),
        "UsernsMode": namespace_mode("--userns", kw.get("userns")),
        "CgroupnsMode": namespace_mode("--cgroupns", kw.get("cgroupns")) or "private",
        "OomScoreAdj": kw.get("oom_score_adj") or 0,
        "OomKillDisable": bool(kw.get("oom_kill_disable")),
        "CpuShares": kw.get("cpu_shares") or 0,
        "CpusetCpus": cpuset(kw.get("cpuset_cpus") or ""),
        "MemoryReservation": ram_in_bytes(kw["memory_reservation"]) if kw.get("memory_reservation") else 0,
        "VolumeDriver": kw.get("volume_driver") or "",
    }
    return host


def cpuset(value: str) -> str:
    """--cpuset-cpus "0-3,5": every CPU must exist here (Docker's check)."""
    if not value:
        return ""
    cpus = set()
    try:
        for part in value.split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise InvalidArgument(f"Invalid value {value} for cpuset cpus: invalid format: {value}") from None
    available = os.sched_getaffinity(0)
    missing = sorted(cpus - available)
    if missing:
        raise InvalidArgument(f"Requested CPUs are not available - requested {value}, available: "
                              f"{_ranges(sorted(available))}")
    return value


def _ranges(numbers: list[int]) -> str:
    out, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            out.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ",".join(out)


def cgroup_v2() -> bool:
    from berth.core.runtime.cgroups import is_v2

    return is_v2()


def discarded_security_opts(opts) -> list[str]:
    """Warnings for the --security-opt values berth accepts but cannot apply."""
    out = []
    for opt in opts or ():
        key = opt.replace(":", "=", 1).partition("=")[0]
        if key == "apparmor":
            out.append(f"AppArmor profiles are not applied by berth: --security-opt {opt} discarded")
        elif key == "label":
            out.append(f"SELinux labels are not applied by berth: --security-opt {opt} discarded")
    return out


def process_settings(host_config: dict) -> dict:
    """ProcessSpec arguments HostConfig sets for the container's first process
    and for every exec: capabilities (all the host can grant when
    privileged), no_new_privs, the seccomp filter (True: berth's default,
    False: none, bytes: a compiled profile), --group-add and --ulimit."""
    from berth.core.runtime import capabilities
    from berth.core.runtime.errors import StartError

    security = security_settings(host_config.get("SecurityOpt"))
    privileged = bool(host_config.get("Privileged"))
    cap_add = ["ALL"] if privileged else list(host_config.get("CapAdd") or [])
    cap_drop = [] if privileged else list(host_config.get("CapDrop") or [])  # privileged: every one, as Docker
    seccomp = security["seccomp"]
    if privileged or seccomp == "unconfined":
        seccomp = False
    elif seccomp == "default":
        seccomp = True
    else:
        from berth.core.runtime.seccomp import compile_profile

        try:
            seccomp = compile_profile(seccomp, capabilities.resolve(cap_add, cap_drop))
        except (ValueError, TypeError, KeyError) as exc:
            raise StartError(f"invalid seccomp profile: {exc}", "seccomp") from None
    return {"cap_add": cap_add, "cap_drop": cap_drop, "no_new_privs": security["no_new_privs"],
            "seccomp": seccomp, "group_add": list(host_config.get("GroupAdd") or ()),
            "rlimits": [(u["Name"], u["Soft"], u["Hard"]) for u in host_config.get("Ulimits") or ()]}
