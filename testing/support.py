"""Small tools the conformance suites share: host commands, mounts, free
ports and subnets, fetching from a namespace, listing a tree on failure."""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import stat
import subprocess
import time
from pathlib import Path

from berth.core.driverkit import host_routes_overlap, mounts_under

__all__ = ["sh", "mounts_under", "unmount_all_under", "loop_devices_under", "detach_loop_devices_under", "free_port",
           "free_subnet", "fetch", "tree_listing"]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a host command (text output captured); `check` raises on failure."""
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def unmount_all_under(path) -> None:
    """Lazily unmount whatever is mounted at or below `path`, deepest first."""
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True)


def loop_devices_under(path) -> list[str]:
    """The loop devices (``/dev/loopN``) whose backing file is at or below `path`."""
    base = os.path.realpath(path).rstrip("/") + "/"
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            target = backing.read_text().strip()
        except OSError:  # detached meanwhile
            continue
        if target.removesuffix(" (deleted)").startswith(base):
            found.append("/dev/" + backing.parent.parent.name)
    return sorted(found)


def detach_loop_devices_under(path) -> None:
    """Detach every loop device whose backing file is at or below `path`
    (after unmount_all_under: a mounted one is freed when its mount goes)."""
    for device in loop_devices_under(path):
        subprocess.run(["losetup", "-d", device], capture_output=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_subnet(prefixlen: int = 24) -> ipaddress.IPv4Network:
    """A random subnet of 10.0.0.0/8 that no route of this host covers (so a
    test network never shadows the host's own), not 10.0.0.0/16."""
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(1, 254)}.{random.randint(0, 255)}.0/{prefixlen}",
                                   strict=False)
        if not host_routes_overlap(net):
            return net
    raise RuntimeError("no free /%d in 10.0.0.0/8: every one overlaps a route of this host" % prefixlen)


def fetch(url: str, timeout: float = 5) -> str:
    """GET `url` (on 127.0.0.1 or a test's own namespace), retrying while the server starts."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def tree_listing(root: Path) -> str:
    """One line per entry under root: mode, owner, size, path, link target."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError as exc:
                lines.append((path, f"?? {path}: {exc}"))
                continue
            target = f" -> {os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else ""
            lines.append((path, f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} {st.st_size:>9} {path}{target}"))
    return "\n".join(line for _, line in sorted(lines))
