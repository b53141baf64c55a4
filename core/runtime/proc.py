"""Process identity: a PID is only "the same process" with the same start time;
and writing kernel files.

PIDs are reused; every liveness check in berth (containers, monitors,
network setups) compares the start time recorded at start with this.
"""

from __future__ import annotations

import os


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot, field 22 of /proc/PID/stat) of a live,
    non-zombie `pid`; None when there is no such process."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def write_file(path: str, value: str) -> None:
    """Write `value` to a kernel file (/proc, /sys, cgroupfs) in one write(2), never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
