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


CAP_SYS_RESOURCE = 24


def oom_score_adj_floor() -> int | None:
    """The lowest oom_score_adj a container started from here can get, when there is one: this
    process's own, if it lacks CAP_SYS_RESOURCE (a host that withholds it: a container, a CI
    sandbox; lowering the value needs it); None when any value in [-1000, 1000] can be set."""
    try:
        with open("/proc/self/status") as f:
            effective = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
        if effective & (1 << CAP_SYS_RESOURCE):
            return None
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError, StopIteration):
        return None
