"""Published and exposed ports: `-p`, `-P` and `--expose`, in Docker's shapes.

Docker keeps ports as strings keyed "80/tcp": Config.ExposedPorts is
{"80/tcp": {}} and HostConfig.PortBindings is
{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}. An empty
HostPort means "pick one from the configured range"; "8000-8010" means
"pick one from that range". berth keeps the very same shapes so inspect
looks like Docker's, and parses with go-connections' nat rules and errors.
"""

from __future__ import annotations

import ipaddress

from berth.core.errors import InvalidArgument

PROTOS = ("tcp", "udp", "sctp")


def port_key(port: int, proto: str = "tcp") -> str:
    """"80/tcp"."""
    return f"{port}/{proto}"


def split_key(key: str) -> tuple[int, str]:
    """"80/tcp" -> (80, "tcp"); a bare "80" is tcp."""
    number, _, proto = key.partition("/")
    return int(number), proto or "tcp"


def parse_range(text: str) -> tuple[int, int]:
    """"80" -> (80, 80); "8000-8010" -> (8000, 8010). ValueError when bad."""
    start, sep, end = text.partition("-")
    first = _number(start)
    last = _number(end) if sep else first
    if last < first:
        raise ValueError(text)
    return first, last


def _number(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_publish(raw: str) -> list[tuple[str, dict]]:
    """One `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]` -> [("80/tcp", {"HostIp", "HostPort"})].

    Errors are go-connections' (`docker run -p` prints the same).
    """
    ip, host_port, container_port = _split_parts(raw)
    container_port, _, proto = container_port.partition("/")
    if not container_port:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in PROTOS:
        raise InvalidArgument(f"invalid proto: {proto}")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {ip}") from None
    try:
        start, end = parse_range(container_port)
        if start == 0:
            raise ValueError(container_port)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_range(host_port)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument(
                f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
    count = end - start + 1
    out = []
    for i in range(count):
        binding = ""
        if host_port:
            binding = str(host_start + i)
            if count == 1 and host_start != host_end:
                binding += f"-{host_end}"  # a range to pick one port from
        out.append((port_key(start + i, proto), {"HostIp": ip, "HostPort": binding}))
    return out


def parse_publish_specs(specs: list[str]) -> tuple[dict, dict]:
    """Every `-p`: (ExposedPorts, PortBindings), Docker's shapes."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict]] = {}
    for spec in specs:
        for key, binding in parse_publish(spec):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def parse_expose(specs: list[str]) -> dict:
    """Every `--expose PORT[-PORT][/PROTO]` -> ExposedPorts entries."""
    exposed: dict[str, dict] = {}
    for spec in specs:
        number, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOS:
            raise InvalidArgument(f"invalid proto: {proto}")
        try:
            start, end = parse_range(number)
        except ValueError:
            raise InvalidArgument(f"invalid range format for --expose: {spec}, error: invalid port") from None
        for port in range(start, end + 1):
            exposed[port_key(port, proto)] = {}
    return exposed


def publish_all(exposed: dict, bindings: dict) -> dict:
    """`-P`: every exposed port without a binding gets one on a random host port."""
    out = {k: list(v) for k, v in bindings.items()}
    for key in exposed or {}:
        if not out.get(key):
            out[key] = [{"HostIp": "", "HostPort": ""}]
    return out


def sorted_keys(keys) -> list[str]:
    """Port keys by number then protocol, as Docker prints them."""
    return sorted(keys, key=lambda k: (split_key(k)[0], split_key(k)[1]))
