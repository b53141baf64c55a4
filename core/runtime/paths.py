"""Resolve a container path inside a root directory, never leaving it.

Image content is untrusted: a symlink at /dev, a mount point or a WorkingDir
may point at "/etc" or "../../../". Every path is resolved component by
component as if `root` were "/" (absolute links restart at root, ".." stops
at root), like securejoin.
"""

import errno
import os

_MAX_LINKS = 40


def resolve_in_root(root: str, path: str) -> str:
    """Return the host path of container path `path` under `root`.

    Missing components are kept as they are (they can be created later with
    make_inside). The result always starts with `root`.
    """
    root = root.rstrip("/") or "/"
    pending = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while pending:
        name = pending.pop(0)
        if name == ".":
            continue
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = _join(root, resolved + [name])
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or missing: a plain component
            resolved.append(name)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return _join(root, resolved)


def _join(root: str, parts: list[str]) -> str:
    if not parts:
        return root
    return (root if root != "/" else "") + "/" + "/".join(parts)


def make_inside(root: str, path: str, is_dir: bool = True, mode: int = 0o755) -> str:
    """Resolve `path` under `root` and create what is missing.

    Returns the host path. A missing last component becomes a directory, or
    an empty file when is_dir is False (a mount point for a file bind).
    """
    host = resolve_in_root(root, path)
    parent = os.path.dirname(host)
    if not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)
    if is_dir:
        try:
            os.mkdir(host, mode)
        except FileExistsError:
            pass
    elif not os.path.lexists(host):
        fd = os.open(host, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
    return host
