"""--init: the host's small init, bound into the container as its PID 1.

Docker ships tini as `docker-init` and runs `/sbin/docker-init -- CMD`;
podman uses catatonit. Both reap zombies and forward signals to the
command. berth uses whichever the host has, statically linked ones first
(a dynamically linked init needs the host's libc inside the image).
"""

from __future__ import annotations

import os
import struct

from berth.core.runtime.errors import StartError

CONTAINER_PATH = "/sbin/docker-init"  # where Docker puts it, so PID 1 is named docker-init
_NAMES = ("docker-init", "tini-static", "catatonit", "tini")
_DIRECTORIES = ("/usr/libexec/docker", "/usr/local/bin", "/usr/bin", "/usr/sbin", "/sbin", "/bin",
                "/usr/libexec/podman", "/usr/local/libexec/podman")
_PT_INTERP = 3


def is_static(path: str) -> bool:
    """True when the ELF file at `path` asks for no program interpreter."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return False
            endian = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from(endian + "I", table, i * phentsize)[0] != _PT_INTERP for i in range(phnum))


def find() -> str:
    """Host path of the init to bind, or StartError saying what to install."""
    found = []
    for name in _NAMES:
        for directory in _DIRECTORIES:
            path = os.path.realpath(f"{directory}/{name}")
            if os.path.isfile(path) and os.access(path, os.X_OK) and path not in found:
                found.append(path)
    for path in found:
        if is_static(path):
            return path
    if found:
        return found[0]
    raise StartError("--init: no init binary found on this host: install tini (Debian: apt install tini) "
                     "or catatonit", "init")
