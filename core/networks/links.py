"""Docker's legacy container links: `--link NAME[:ALIAS]`.

A link gives the container environment variables describing the linked
container (its address, exposed ports and environment) and an /etc/hosts
line for the alias and the name. The variables are exactly those of moby's
daemon/links/links.go, ports sorted tcp first then by number, consecutive
ports of one protocol also summarised as a range.
"""

from __future__ import annotations

from berth.core.errors import InvalidArgument
from berth.core.networks.ports import split_key


def parse_link(spec: str) -> tuple[str, str]:
    """"db:alias" -> ("db", "alias"); "db" -> ("db", "db")."""
    name, sep, alias = spec.partition(":")
    name = name.lstrip("/")
    if not name or (sep and not alias):
        raise InvalidArgument(f"invalid value {spec!r} for --link: expected NAME[:ALIAS]")
    return name, alias or name


def _order(key: str) -> tuple:
    number, proto = split_key(key)
    return (0 if proto == "tcp" else 1, proto, number)


def link_env(link_name: str, child_ip: str, exposed_ports, child_env: list[str]) -> list[str]:
    """The variables for one link.

    :param link_name: "/<container>/<alias>" (Docker's link name).
    :param child_ip: the linked container's address.
    :param exposed_ports: its ExposedPorts keys ("80/tcp").
    :param child_env: its Config.Env ("KEY=value").
    """
    alias = link_name.rsplit("/", 1)[-1].upper().replace("-", "_")
    ports = [split_key(k) for k in sorted(exposed_ports or [], key=_order)]
    env: list[str] = []
    start = end = None
    for i, (num, proto) in enumerate(ports):
        if i == 0:
            start = end = (num, proto)
            env.append(f"{alias}_PORT={proto}://{child_ip}:{num}")
        prefix = f"{alias}_PORT_{num}_{proto.upper()}"
        env += [f"{prefix}={proto}://{child_ip}:{num}", f"{prefix}_ADDR={child_ip}",
                f"{prefix}_PORT={num}", f"{prefix}_PROTO={proto}"]
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            prefix = f"{alias}_PORT_{start[0]}_{start[1].upper()}"
            env += [f"{prefix}_START={start[1]}://{child_ip}:{start[0]}", f"{prefix}_PORT_START={start[0]}",
                    f"{prefix}_END={end[1]}://{child_ip}:{end[0]}", f"{prefix}_PORT_END={end[0]}"]
        start = end = (num, proto)
    env.append(f"{alias}_NAME={link_name}")
    for item in child_env or []:
        key, sep, value = item.partition("=")
        if not sep or key in ("HOME", "PATH"):
            continue
        env.append(f"{alias}_ENV_{key}={value}")
    return env
