"""Control groups of a container: limits, freeze, process list, kill, stats.

v1 (one hierarchy per controller, /sys/fs/cgroup/<controller>/<parent>/<name>)
and v2 (unified, /sys/fs/cgroup/<parent>/<name>) behind one class. A Cgroup
object only computes paths; it can be rebuilt from (parent, name) in any
process (`berth pause` in the CLI, the monitor, metrics).
"""

import errno
import os
import signal
import time

from berth.core.plumbing.records import Record
from berth.core.runtime.proc import write_file as _write

CGROUP_ROOT = "/sys/fs/cgroup"

# v1 controllers a container gets a directory in, when mounted; cpuset only
# when it asks for CPUs (--cpuset-cpus): its directories need their cpus and
# mems copied down before a task may join, which a start need not pay for.
_V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices",
                   "blkio", "cpuset")
_V1_ON_REQUEST = ("cpuset",)
_V2_CONTROLLERS = ("memory", "cpu", "pids", "io", "cpuset")

# Docker's default device allow list (moby oci/devices + runc defaults).
DEFAULT_DEVICE_RULES = (
    "c *:* m", "b *:* m",
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
)


class Limits(Record):
    """Resource limits. None leaves the kernel default (unlimited).

    memory: bytes. memory_swap: memory + swap in bytes (Docker's
    --memory-swap; -1 unlimited; None with memory set means twice memory,
    as Docker). cpus: number of CPUs (float) -> CFS quota over a 100ms
    period. pids_limit: max tasks (<= 0 unlimited). cpu_shares: relative
    weight (v1 cpu.shares; v2 cpu.weight, converted as Docker). cpuset_cpus:
    "0-3,5". memory_reservation: soft limit in bytes (v2 memory.low).
    oom_kill_disable: v1 only (v2 has no such switch). device_rules: more
    device cgroup allow rules ("c 10:229 rwm"); all_devices: allow every
    device (--privileged). Device rules act on v1 (v2 needs an eBPF program).
    """

    FIELDS = {"memory": None, "memory_swap": None, "cpus": None, "pids_limit": None, "cpu_shares": None,
              "cpuset_cpus": None, "memory_reservation": None, "oom_kill_disable": False, "device_rules": (),
              "all_devices": False}


class Stats(Record):
    """A snapshot for metrics / `berth stats`: memory_usage, memory_limit
    (or None), cpu_usage_ns, pids, block_read / block_write (bytes), and
    net_rx / net_tx (bytes, every interface but lo; 0 until read_stats fills them);
    interfaces: {name: /proc/net/dev's counters as Docker names them (rx_bytes, rx_packets,
    rx_errors, rx_dropped, tx_...)} for every interface but lo (None until read_stats)."""

    REQUIRED = ("memory_usage", "memory_limit", "cpu_usage_ns", "pids")
    FIELDS = {"block_read": 0, "block_write": 0, "net_rx": 0, "net_tx": 0, "interfaces": None}


def is_v2() -> bool:
    """True on a pure cgroup v2 host (hybrid v1 hosts count as v1)."""
    return os.path.exists(CGROUP_ROOT + "/cgroup.controllers")




def _makedirs_racing_remove(path: str) -> None:
    """makedirs that survives another process removing an empty parent."""
    for attempt in range(5):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def _inherit_cpuset(path: str) -> None:
    """A v1 cpuset cgroup (and its parents below the mount) takes no task
    until it has cpus and mems: copy them down from the level above."""
    levels = []
    while os.path.exists(os.path.dirname(path) + "/cpuset.cpus"):
        levels.append(path)
        path = os.path.dirname(path)
    for level in reversed(levels):
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not _read(f"{level}/{name}").strip():
                _write(f"{level}/{name}", _read(f"{os.path.dirname(level)}/{name}").strip())


def _read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode()


class Cgroup:
    """The cgroup(s) of one container: <parent>/<name> in every hierarchy."""

    def __init__(self, parent: str, name: str, cpuset: bool | None = None):
        """cpuset: whether its v1 cpuset directory is part of it (None: if it exists)."""
        self.parent = parent.strip("/")
        self.name = name
        self.v2 = is_v2()
        rel = f"{self.parent}/{name}" if self.parent else name
        if self.v2:
            self.dirs = {"": f"{CGROUP_ROOT}/{rel}"}
        else:
            self.dirs = {}
            seen = set()
            for ctrl in _V1_CONTROLLERS:
                mount = f"{CGROUP_ROOT}/{ctrl}"
                if not os.path.isdir(mount):
                    continue
                real = os.path.realpath(mount)  # cpu,cpuacct may be one mount
                if real in seen:
                    continue
                seen.add(real)
                if ctrl in _V1_ON_REQUEST and not (cpuset or cpuset is None and os.path.isdir(f"{real}/{rel}")):
                    continue
                self.dirs[ctrl] = f"{real}/{rel}"

    def __repr__(self) -> str:
        return f"Cgroup({self.parent!r}, {self.name!r})"

    def _dir(self, ctrl: str) -> str | None:
        if self.v2:
            return self.dirs[""]
        return self.dirs.get(ctrl)

    @classmethod
    def create(cls, parent: str, name: str, limits: Limits | None = None) -> "Cgroup":
        """Make the directories (idempotent), apply limits and device rules."""
        cg = cls(parent, name, cpuset=bool(limits and limits.cpuset_cpus))
        if cg.v2:
            cg._create_v2()
        else:
            for ctrl, path in cg.dirs.items():
                _makedirs_racing_remove(path)
                if ctrl == "cpuset":
                    _inherit_cpuset(path)
            devices = cg.dirs.get("devices")
            if devices:
                _write(devices + "/devices.deny", "a")
                if limits is not None and limits.all_devices:
                    _write(devices + "/devices.allow", "a")
                for rule in DEFAULT_DEVICE_RULES + tuple(limits.device_rules if limits else ()):
                    _write(devices + "/devices.allow", rule)
        try:
            if limits:
                cg.set_limits(limits)
        except BaseException:
            cg.remove()
            raise
        return cg

    def _create_v2(self) -> None:
        available = _read(CGROUP_ROOT + "/cgroup.controllers").split()
        enable = " ".join("+" + c for c in _V2_CONTROLLERS if c in available)
        level = CGROUP_ROOT
        parts = self.parent.split("/") if self.parent else []
        for part in parts:
            if enable:
                _write(level + "/cgroup.subtree_control", enable)
            level = f"{level}/{part}"
            os.makedirs(level, exist_ok=True)
        if enable:
            _write(level + "/cgroup.subtree_control", enable)
        _makedirs_racing_remove(self.dirs[""])

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.dirs.values())

    def set_limits(self, limits: Limits) -> None:
        """Apply memory, swap, cpu and pids limits."""
        mem = self._dir("memory")
        if limits.memory and mem:
            swap = limits.memory_swap
            if swap is None:
                swap = 2 * limits.memory
            if self.v2:
                _write(mem + "/memory.max", str(limits.memory))
                if os.path.exists(mem + "/memory.swap.max"):
                    _write(mem + "/memory.swap.max",
                           "max" if swap < 0 else str(max(swap - limits.memory, 0)))
            else:
                memsw = mem + "/memory.memsw.limit_in_bytes"
                writes = [(mem + "/memory.limit_in_bytes", str(limits.memory))]
                if os.path.exists(memsw):
                    writes.append((memsw, "-1" if swap < 0 else str(swap)))
                try:
                    for path, value in writes:
                        _write(path, value)
                except OSError:  # raising: memory may not exceed the old memory+swap, so that one first
                    for path, value in reversed(writes):
                        _write(path, value)
        cpu = self._dir("cpu")
        if limits.cpus and cpu:
            period = 100000
            quota = max(int(limits.cpus * period), 1000)
            if self.v2:
                _write(cpu + "/cpu.max", f"{quota} {period}")
            else:
                _write(cpu + "/cpu.cfs_period_us", str(period))
                _write(cpu + "/cpu.cfs_quota_us", str(quota))
        pids = self._dir("pids")
        if limits.pids_limit is not None and pids:
            value = str(limits.pids_limit) if limits.pids_limit > 0 else "max"
            _write(pids + "/pids.max", value)
        self._set_shares_and_reservations(limits)

    def _set_shares_and_reservations(self, limits: Limits) -> None:
        """cpu shares, cpuset, memory reservation, oom_kill_disable."""
        cpu, cpuset, mem = self._dir("cpu"), self._dir("cpuset"), self._dir("memory")
        if limits.cpu_shares and cpu:
            if self.v2:  # Docker's conversion of shares [2, 262144] to weight [1, 10000]
                weight = 1 + ((min(max(limits.cpu_shares, 2), 262144) - 2) * 9999) // 262142
                _write(cpu + "/cpu.weight", str(weight))
            else:
                _write(cpu + "/cpu.shares", str(limits.cpu_shares))
        if limits.cpuset_cpus and cpuset:
            _write(cpuset + "/cpuset.cpus", limits.cpuset_cpus)
        if limits.memory_reservation and mem:
            name = "/memory.low" if self.v2 else "/memory.soft_limit_in_bytes"
            _write(mem + name, str(limits.memory_reservation))
        if limits.oom_kill_disable and mem and not self.v2:
            _write(mem + "/memory.oom_control", "1")

    def add(self, pid: int = 0) -> None:
        """Move `pid` (0: the calling process, which must be single-threaded) into this cgroup."""
        for path in self.dirs.values():
            _write(_membership_file(path, self.v2, pid), str(pid))

    def pids(self) -> list[int]:
        """Host pids of every process in the cgroup (for `top`)."""
        path = self._dir("pids") or self._dir("freezer") or next(iter(self.dirs.values()))
        try:
            return [int(x) for x in _read(path + "/cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process (pause); returns once the kernel says frozen."""
        self._set_frozen(True, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        """Resume every process (unpause)."""
        self._set_frozen(False, timeout)

    def is_frozen(self) -> bool:
        if self.v2:
            events = _read(self.dirs[""] + "/cgroup.events")
            return "frozen 1" in events
        path = self.dirs.get("freezer")
        return bool(path) and _read(path + "/freezer.state").strip() == "FROZEN"

    def _set_frozen(self, frozen: bool, timeout: float) -> None:
        if self.v2:
            _write(self.dirs[""] + "/cgroup.freeze", "1" if frozen else "0")
        else:
            path = self.dirs.get("freezer")
            if not path:
                raise OSError(errno.ENOTSUP, "no freezer cgroup", CGROUP_ROOT)
            _write(path + "/freezer.state", "FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + timeout
        while self.is_frozen() != frozen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cgroup {self.name} did not "
                                   f"{'freeze' if frozen else 'thaw'}")
            time.sleep(0.001)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to every process in the cgroup."""
        if self.v2 and sig == signal.SIGKILL and os.path.exists(self.dirs[""] + "/cgroup.kill"):
            _write(self.dirs[""] + "/cgroup.kill", "1")
            return
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, thaw, and rmdir every directory (retrying)."""
        deadline = time.monotonic() + timeout
        if self.exists() and self.pids():
            try:
                if self.is_frozen():
                    self.kill()
                    self.thaw()
            except OSError:
                pass
        for path in self.dirs.values():
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    self.kill()
                    time.sleep(0.005)
        self._remove_empty_parents()

    def _remove_empty_parents(self) -> None:
        """Remove the parent directory when we left it empty (test parents)."""
        if not self.parent:
            return
        for path in self.dirs.values():
            parent = os.path.dirname(path)
            try:
                os.rmdir(parent)
            except OSError:
                pass  # other containers still there, or in use

    def memory_oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup."""
        mem = self._dir("memory")
        if not mem:
            return 0
        name = "/memory.events" if self.v2 else "/memory.oom_control"
        try:
            text = _read(mem + name)
        except FileNotFoundError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def stats(self) -> Stats:
        """Memory usage/limit, CPU time and process count."""
        mem = self._dir("memory")
        usage, limit = 0, None
        if mem:
            if self.v2:
                usage = int(_read(mem + "/memory.current"))
                raw = _read(mem + "/memory.max").strip()
            else:
                usage = int(_read(mem + "/memory.usage_in_bytes"))
                raw = _read(mem + "/memory.limit_in_bytes").strip()
            if raw != "max" and int(raw) < 1 << 62:
                limit = int(raw)
        cpu_ns = 0
        if self.v2:
            for line in _read(self.dirs[""] + "/cpu.stat").splitlines():
                if line.startswith("usage_usec "):
                    cpu_ns = int(line.split()[1]) * 1000
        else:
            acct = self.dirs.get("cpuacct") or self.dirs.get("cpu")
            if acct and os.path.exists(acct + "/cpuacct.usage"):
                cpu_ns = int(_read(acct + "/cpuacct.usage"))
        read, write = self._block_io()
        return Stats(memory_usage=usage, memory_limit=limit, cpu_usage_ns=cpu_ns, pids=len(self.pids()),
                     block_read=read, block_write=write, net_rx=0, net_tx=0)

    def _block_io(self) -> tuple[int, int]:
        """Bytes read and written by the group's processes (io.stat, or blkio's throttle counters)."""
        read = write = 0
        try:
            if self.v2:
                for line in _read(self.dirs[""] + "/io.stat").splitlines():
                    for field in line.split()[1:]:
                        key, _, value = field.partition("=")
                        read += int(value) if key == "rbytes" else 0
                        write += int(value) if key == "wbytes" else 0
            elif self._dir("blkio"):
                for line in _read(self._dir("blkio") + "/blkio.throttle.io_service_bytes_recursive").splitlines():
                    parts = line.split()
                    if len(parts) == 3 and parts[1] in ("Read", "Write"):
                        if parts[1] == "Read":
                            read += int(parts[2])
                        else:
                            write += int(parts[2])
        except (OSError, ValueError):
            pass
        return read, write


    @classmethod
    def of_pid(cls, pid: int) -> "Cgroup | None":
        """The container cgroup `pid` is in (by its pids/v2 path), or None at root."""
        v2 = is_v2()
        for line in _read(f"/proc/{pid}/cgroup").splitlines():
            _, ctrls, path = line.split(":", 2)
            if (ctrls == "") if v2 else ("pids" in ctrls.split(",")):
                rel = path.strip("/")
                if not rel:
                    return None
                parent, _, name = rel.rpartition("/")
                return cls(parent, name)
        return None


def read_stats(pid: int) -> Stats | None:
    """The figures `stats` and the metrics show for the container whose process is `pid`:
    its cgroup's, with the network counters of its network namespace. None when it is gone."""
    try:
        group = Cgroup.of_pid(pid)
        if group is None:
            return None
        stats = group.stats()
        stats.interfaces = {}
        for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:]:
            name, _, counters = line.partition(":")
            fields = counters.split()
            if name.strip() != "lo" and len(fields) >= 12:
                rx, tx = fields[0:4], fields[8:12]
                stats.interfaces[name.strip()] = {
                    **{f"rx_{k}": int(v) for k, v in zip(("bytes", "packets", "errors", "dropped"), rx)},
                    **{f"tx_{k}": int(v) for k, v in zip(("bytes", "packets", "errors", "dropped"), tx)}}
                stats.net_rx += int(fields[0])
                stats.net_tx += int(fields[8])
        return stats
    except (OSError, ValueError):
        return None  # it exited between the query and the read


def cgroup_procs_of(pid: int) -> list[str]:
    """The cgroup.procs files of every hierarchy `pid` is in (for exec).

    Read from /proc/PID/cgroup as seen from the caller's cgroup namespace,
    so the paths are host paths. Hierarchies not mounted under
    /sys/fs/cgroup are skipped.
    """
    v2 = is_v2()
    files = []
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            mounts = [CGROUP_ROOT] if v2 else [CGROUP_ROOT + "/unified"]
        else:
            names = [c.removeprefix("name=") for c in ctrls.split(",")]
            mounts = [f"{CGROUP_ROOT}/{ctrls}"] + [f"{CGROUP_ROOT}/{n}" for n in names]
        for mount in mounts:
            procs = f"{mount}{path.rstrip('/')}/cgroup.procs"
            if os.path.exists(procs):
                files.append(procs)
                break
    return files


def join(procs_files: list[str]) -> None:
    """Move the calling (single-threaded) process into each cgroup.procs file given."""
    v2 = is_v2()
    for path in procs_files:
        directory = os.path.dirname(path)
        unified = f"{directory}/".startswith(CGROUP_ROOT + "/unified/")
        _write(_membership_file(directory, v2 or unified, 0), "0")


def _membership_file(directory: str, v2: bool, pid: int) -> str:
    """Where to write `pid` to move it into the cgroup `directory`.

    Writing a PID to cgroup.procs takes the kernel's global threadgroup
    lock, whose RCU grace period costs 8-15 ms per start on v1. Writing "0"
    (the caller) to a v1 `tasks` file moves one thread without that lock
    (Linux 5.17+); for a single-threaded caller that is the whole process.
    """
    return f"{directory}/tasks" if pid == 0 and not v2 else f"{directory}/cgroup.procs"
