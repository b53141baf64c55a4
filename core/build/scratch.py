"""Temporary places of a build, and what a killed build leaves of them.

A build keeps directories of its own under the engine's root (an extracted
context, ADD's downloads, the filesystem of a scratch image) and mounts
images through throwaway writable layers. Each is a `.build-*` directory
that the build holds an flock on while it lives (a view's directory names
its layer). A build killed with SIGKILL cannot clean up, so every build
first reaps the `.build-*` directories nobody holds: their layers are
removed from the storage driver, then the directories themselves.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time

from berth.core.errors import BerthError

PREFIX = ".build-"
VIEW_PREFIX = ".build-view-"
GRACE = 60.0  # seconds: a directory this young may not be locked yet by its maker


class Scratch:
    """A `.build-*` directory under `root`, held (flock) until `close()` removes it."""

    def __init__(self, root, prefix: str = PREFIX):
        self.path = tempfile.mkdtemp(prefix=prefix, dir=root)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def close(self) -> None:
        if self._fd >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._fd)
            self._fd = -1


def view_name(scratch: Scratch) -> str:
    """The storage driver's ID of the writable layer a view directory stands for."""
    return "build-" + os.path.basename(scratch.path)[len(VIEW_PREFIX):]


def reap(engine) -> list[str]:
    """Remove what killed builds left under engine.root (and their layers); return the names."""
    removed = []
    try:
        entries = list(os.scandir(engine.root))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime < GRACE:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live build's
            os.close(fd)
            continue
        try:
            if entry.name.startswith(VIEW_PREFIX):
                layer = "build-" + entry.name[len(VIEW_PREFIX):]
                if engine.storage.exists(layer):
                    try:
                        engine.storage.unmount(layer)
                    except (BerthError, OSError):
                        pass  # not mounted any more
                    engine.storage.remove(layer)
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed
