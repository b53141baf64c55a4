"""Start a container's first process, or exec another one into it.

Process model
-------------
The container's PID 1 is a *direct child of the caller*, so the caller (the
per-container monitor) can os.waitpid() it. To get a direct child into a new
PID namespace, the caller's thread does unshare(CLONE_NEWPID) (which only
changes where its *next* child goes), forks once, and immediately setns()
back into its own PID namespace: later forks of the caller are unaffected.
exec_process does the same with setns() into the container's PID namespace.
Constraints: the caller must be root; os.register_at_fork "after in
parent" hooks run before the setns back (they must not fork).

Reaping: when PID 1 exits, the kernel kills the rest of its PID namespace
and PID 1 only finishes exiting once every other process of the namespace
has been reaped. A process started by exec_process is a child of *its*
caller: whoever waits for PID 1 must not block while also being the one
that has to reap exec'd processes (reap them first, or use waitpid(-1)).

Synchronisation: two close-on-exec pipes. The child writes b"R" on the
status pipe once its namespaces exist; the parent then runs
before_exec(pid) (e.g. move a veth into /proc/PID/ns/net) while the child
builds its filesystem, and writes b"G" on the go pipe. Any failure in the
child is written on the status pipe as b"E" + "kind\\0step\\0message", and
start() raises it (StartError, CommandNotFound 127, CommandNotExecutable
126). A successful execve closes the status pipe: EOF means "running".
"""

import errno
import fcntl
import os
import signal
import socket
import struct

from berth.core.plumbing.records import Record
from berth.core.runtime import capabilities, cgroups, filesystem, rlimits, seccomp
from berth.core.runtime import syscalls as sc
from berth.core.runtime.cgroups import Cgroup
from berth.core.runtime.errors import CommandNotExecutable, CommandNotFound, StartError
from berth.core.runtime.proc import oom_score_adj_floor, write_file
from berth.core.runtime.spec import DEFAULT_PATH, ContainerSpec, ProcessSpec
from berth.core.runtime.users import resolve_user

_TIOCSCTTY = 0x540E
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_NS_ORDER = (("cgroup", sc.CLONE_NEWCGROUP), ("ipc", sc.CLONE_NEWIPC),
             ("uts", sc.CLONE_NEWUTS), ("net", sc.CLONE_NEWNET),
             ("mnt", sc.CLONE_NEWNS))


class Started(Record):
    """A running container process.

    pid: host pid of the container's PID 1 (a child of the caller: waitpid it).
    start_time: its start time in clock ticks since boot (/proc/PID/stat
    field 22), to tell it apart from a later process reusing the pid.
    netns_path: /proc/PID/ns/net (valid while the process lives).
    cgroup: the container's Cgroup (freeze/thaw/stats/remove), or None.
    """

    REQUIRED = ("pid", "start_time", "netns_path", "cgroup")


def process_start_time(pid: int) -> int:
    """Start time of our live child `pid` (see berth.core.runtime.proc)."""
    from berth.core.runtime.proc import start_time

    return start_time(pid)


# ---------------------------------------------------------------- parent side

def start(spec: ContainerSpec, before_exec=None) -> Started:
    """Start spec.args as PID 1 of a new container; return once it exec'd.

    Creates the cgroup spec.cgroup_parent/spec.cgroup_name (when a name is
    given) with spec.limits. before_exec(pid), if given, runs in the caller
    after the child's namespaces exist and before the command is executed.
    Raises StartError / CommandNotFound / CommandNotExecutable (the child
    is reaped and the cgroup removed), InvalidArgument for a bad capability.
    """
    cap_mask = capabilities.resolve(spec.cap_add, spec.cap_drop)
    last_cap = capabilities.last_cap()
    _seccomp_program(spec, cap_mask)
    new_netns = spec.netns is None
    if spec.init:
        from berth.core.runtime.init import CONTAINER_PATH
        from berth.core.runtime.spec import Mount

        spec.mounts = [*spec.mounts, Mount(destination=CONTAINER_PATH, source=spec.init, options=["ro"])]
        spec.args = [CONTAINER_PATH, "--", *spec.args]
    joined = {}  # namespace kind -> fd of the namespace to join
    cgroup = None
    try:
        for kind, path in (("net", spec.netns), ("ipc", spec.ipcns), ("pid", spec.pidns)):
            if path not in (None, "host"):
                try:
                    joined[kind] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise StartError(f"cannot open {kind} namespace {path}: {e.strerror}",
                                     f"join {kind} namespace") from None
        if spec.cgroup_name:
            try:
                cgroup = Cgroup.create(spec.cgroup_parent, spec.cgroup_name, spec.limits)
            except OSError as e:
                raise StartError(f"cannot set up cgroup {spec.cgroup_name}: "
                                 f"{e.filename}: {e.strerror}", "cgroup") from None

        def child(status_w: int, go_r: int) -> None:
            _container_child(spec, cgroup, joined, new_netns, cap_mask, last_cap,
                             status_w, go_r)

        pidns = _HOST if spec.pidns == "host" else joined.get("pid")
        pid, status_r, go_w = _fork_into_pidns(pidns, child, spec)
        try:
            _wait_ready(pid, status_r, go_w, before_exec)
        finally:
            os.close(status_r)
    except BaseException:
        if cgroup is not None:
            try:
                cgroup.remove()
            except OSError:
                pass
        raise
    finally:
        for fd in joined.values():
            os.close(fd)
    return Started(pid=pid, start_time=process_start_time(pid), netns_path=f"/proc/{pid}/ns/net", cgroup=cgroup)


def _seccomp_program(spec, cap_mask: int) -> None:
    """spec.seccomp True: the default filter for this architecture, built here in the parent
    (libseccomp is not loaded in a forked child); False where libseccomp is missing."""
    if spec.seccomp is True:
        try:
            spec.seccomp = seccomp.program(cap_mask) or False
        except OSError as e:
            raise StartError(f"cannot build the seccomp filter: {e.strerror}", "seccomp") from None


def exec_process(target_pid: int, spec: ProcessSpec, cgroup: Cgroup | None = None) -> int:
    """Run spec.args inside the running container whose PID 1 is target_pid.

    Joins its cgroups (those of `cgroup`, else every one target_pid is in), cgroup, ipc,
    uts, net, pid and mount namespaces; applies user, capabilities and
    no_new_privs like start(). Returns the host pid, a child of the caller.
    Raises like start().
    """
    cap_mask = capabilities.resolve(spec.cap_add, spec.cap_drop)
    last_cap = capabilities.last_cap()
    _seccomp_program(spec, cap_mask)
    if cgroup is not None:
        procs = [f"{d}/cgroup.procs" for d in cgroup.dirs.values()]
    else:
        procs = cgroups.cgroup_procs_of(target_pid)
    fds = {}
    try:
        for name, _ in _NS_ORDER + (("pid", sc.CLONE_NEWPID),):
            fds[name] = os.open(f"/proc/{target_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        for fd in fds.values():
            os.close(fd)
        raise StartError(f"container process {target_pid} is not running: {e.strerror}",
                         "open namespaces") from None
    try:
        def child(status_w: int, go_r: int) -> None:
            _exec_child(spec, procs, fds, cap_mask, last_cap, status_w, go_r)

        pid, status_r, go_w = _fork_into_pidns(fds["pid"], child, spec)
        try:
            _wait_ready(pid, status_r, go_w, None)
        finally:
            os.close(status_r)
    finally:
        for fd in fds.values():
            os.close(fd)
    return pid


_HOST = -1  # _fork_into_pidns: stay in the caller's pid namespace (--pid host)


def _fork_into_pidns(pidns_fd, child, spec) -> tuple[int, int, int]:
    """Fork `child` as a direct child living in a new (None), the caller's
    (_HOST) or a given pid ns."""
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if pidns_fd is None:
            sc.unshare(sc.CLONE_NEWPID)
        elif pidns_fd != _HOST:
            sc.setns(pidns_fd, sc.CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            sc.setns(own, sc.CLONE_NEWPID)
            raise
        if pid == 0:  # pragma: no cover - the child never returns
            code = 125
            try:
                os.close(status_r)
                os.close(go_w)
                child(status_w, go_r)
            except BaseException:
                pass
            finally:
                os._exit(code)
        sc.setns(own, sc.CLONE_NEWPID)
    except BaseException:
        for fd in (status_r, status_w, go_r, go_w):
            os.close(fd)
        raise
    finally:
        os.close(own)
    os.close(status_w)
    os.close(go_r)
    return pid, status_r, go_w


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _wait_ready(pid: int, status_r: int, go_w: int, before_exec) -> None:
    """Parent half of the handshake; raises the child's error, reaping it."""
    try:
        first = os.read(status_r, 1)
        if first == b"R":
            if before_exec is not None:
                try:
                    before_exec(pid)
                except BaseException:
                    _kill_and_reap(pid)
                    rest = _read_all(status_r)
                    if rest.startswith(b"E"):
                        raise _decode_error(rest[1:]) from None
                    raise
            try:
                os.write(go_w, b"G")
            except BrokenPipeError:
                pass  # the child died; its report follows on the status pipe
            os.close(go_w)
            go_w = -1
            rest = _read_all(status_r)
        else:
            rest = first + _read_all(status_r)
    finally:
        if go_w >= 0:
            os.close(go_w)
    if rest == b"":
        return  # execve succeeded and closed the pipe
    _, status = os.waitpid(pid, 0)
    if rest.startswith(b"E"):
        raise _decode_error(rest[1:])
    raise StartError(f"container process died during setup (status {status})", "setup")


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _decode_error(payload: bytes) -> StartError:
    kind, step, message = payload.decode("utf-8", "replace").split("\0", 2)
    cls = {"notfound": CommandNotFound, "noexec": CommandNotExecutable}.get(kind, StartError)
    return cls(message, step)


# ----------------------------------------------------------------- child side
# Everything below runs in the forked child. It reports any failure on the
# status pipe and exits; it never returns to the caller's code.

class _ChildError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Pipes:
    """The child's ends of the handshake pipes (moved to fds >= 3)."""

    def __init__(self, status: int, go: int):
        self.status = status
        self.go = go


def _report(status_w: int, kind: str, step: str, message: str) -> None:
    try:
        os.write(status_w, b"E" + f"{kind}\0{step}\0{message}".encode())
    except OSError:
        pass


def _run_child(pipes: _Pipes, body) -> None:
    """Run the child body; on failure report it and _exit with Docker's code."""
    try:
        body()
    except _ChildError as e:
        _report(pipes.status, e.kind, filesystem.step.current, str(e))
        os._exit(127 if e.kind == "notfound" else 126)
    except StartError as e:
        _report(pipes.status, "setup", e.step or filesystem.step.current, e.message)
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        _report(pipes.status, "setup", filesystem.step.current,
                f"{filesystem.step.current}:{where}: {e.strerror}")
    except BaseException as e:
        _report(pipes.status, "setup", filesystem.step.current,
                f"{filesystem.step.current}: {type(e).__name__}: {e}")
    os._exit(125)


def _reset_signals() -> None:
    """Give the command default signal handling.

    Python ignores SIGPIPE and SIGXFSZ, and the caller may ignore or block
    others; ignored dispositions and the mask survive execve.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _setup_stdio(spec: ProcessSpec, pipes: _Pipes) -> None:
    """dup2 the caller's stdio onto 0/1/2; move our pipes to fds >= 3."""
    pipes.status = fcntl.fcntl(pipes.status, fcntl.F_DUPFD_CLOEXEC, 3)
    pipes.go = fcntl.fcntl(pipes.go, fcntl.F_DUPFD_CLOEXEC, 3)
    wanted = [spec.stdin, spec.stdout, spec.stderr]
    moved = [None if fd is None else fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
             for fd in wanted]
    for target, fd in enumerate(moved):
        if fd is not None:
            os.dup2(fd, target, inheritable=True)
            os.close(fd)
    os.setsid()
    if spec.tty:
        fcntl.ioctl(0, _TIOCSCTTY, 0)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _container_child(spec, cgroup, joined, new_netns, cap_mask, last_cap,
                     status_w, go_r) -> None:
    pipes = _Pipes(status_w, go_r)

    def body():
        step = filesystem.step
        step.current = "stdio"
        _reset_signals()
        _setup_stdio(spec, pipes)
        if cgroup is not None:
            step.current = "join cgroup"
            cgroup.add(0)
        if spec.oom_score_adj is not None:
            step.current = "oom_score_adj"
            floor = oom_score_adj_floor()  # lowering it needs CAP_SYS_RESOURCE, which a host may withhold:
            if floor is None or spec.oom_score_adj > floor:  # then ours is kept (create warned)
                write_file("/proc/self/oom_score_adj", str(spec.oom_score_adj))
        step.current = "create namespaces"
        flags = sc.CLONE_NEWNS
        for value, flag in ((spec.utsns, sc.CLONE_NEWUTS), (spec.ipcns, sc.CLONE_NEWIPC),
                            (spec.cgroupns, sc.CLONE_NEWCGROUP), (spec.netns, sc.CLONE_NEWNET)):
            if value is None:
                flags |= flag
        sc.unshare(flags)
        for kind, flag in (("net", sc.CLONE_NEWNET), ("ipc", sc.CLONE_NEWIPC)):
            if kind in joined:
                step.current = f"join {kind} namespace"
                sc.setns(joined[kind], flag)
        os.write(pipes.status, b"R")
        if new_netns:
            step.current = "bring up loopback"
            _loopback_up()
        if spec.hostname and spec.utsns is None:
            step.current = "set hostname"
            sc.sethostname(spec.hostname)
        net_sysctls = filesystem.prepare(spec, 0 if spec.tty else None, new_netns or "net" in joined, cgroup)
        step.current = "wait for parent"
        if os.read(pipes.go, 1) != b"G":
            raise StartError("parent went away during setup", "wait for parent")
        if net_sysctls is not None:  # the network is wired now
            filesystem.write_net_sysctls(net_sysctls, spec.sysctls)
        _finish(spec, cap_mask, last_cap, pipes.status, spec.readonly_rootfs)

    _run_child(pipes, body)


def _exec_child(spec, procs, fds, cap_mask, last_cap, status_w, go_r) -> None:
    pipes = _Pipes(status_w, go_r)

    def body():
        step = filesystem.step
        step.current = "stdio"
        _reset_signals()
        _setup_stdio(spec, pipes)
        step.current = "join cgroup"
        cgroups.join(procs)
        for name, nstype in _NS_ORDER:
            step.current = f"join {name} namespace"
            sc.setns(fds[name], nstype)
        os.write(pipes.status, b"R")
        step.current = "wait for parent"
        if os.read(pipes.go, 1) != b"G":
            raise StartError("parent went away during setup", "wait for parent")
        _finish(spec, cap_mask, last_cap, pipes.status, False)

    _run_child(pipes, body)


def _finish(spec, cap_mask, last_cap, status_w, readonly_root) -> None:
    """Inside the container's root: fds, cwd, user, caps, then execve."""
    step = filesystem.step
    step.current = "close fds"
    # Keep only stdio and the status pipe (close-on-exec): a leaked fd is a
    # door to the host, and chdir must not be able to use one.
    os.closerange(3, status_w)
    os.closerange(status_w + 1, 1 << 20)

    step.current = "user"
    uid, gid, groups, home = resolve_user(spec.user, group_add=spec.group_add)
    env = [e for e in spec.env if "\0" not in e]
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")

    step.current = "chdir"
    cwd = spec.cwd or "/"
    if not cwd.startswith("/"):
        cwd = "/" + cwd
    try:
        os.chdir(cwd)
    except FileNotFoundError:
        try:
            os.makedirs(cwd, 0o755, exist_ok=True)
            os.chdir(cwd)
        except OSError as e:
            raise StartError(f"cannot create working directory {cwd}: {e.strerror}",
                             "chdir") from None
    except OSError as e:
        raise StartError(f"cannot change to working directory {cwd}: {e.strerror}",
                         "chdir") from None
    if not os.getcwd().startswith("/"):  # "(unreachable)/...": outside the root
        raise StartError(f"working directory {cwd} is outside the container", "chdir")
    if readonly_root:
        filesystem.make_root_readonly()

    if spec.rlimits:
        step.current = "rlimits"
        rlimits.apply(spec.rlimits)
    if isinstance(spec.seccomp, bytes):  # made by _seccomp_program() before the fork
        # Installed while still fully privileged (works without
        # no_new_privs); nothing after it uses a denied call.
        step.current = "seccomp"
        sc.seccomp_filter(spec.seccomp)
    step.current = "capabilities"
    capabilities.drop_bounding(cap_mask, last_cap)
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    step.current = "set user"
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    step.current = "capabilities"
    capabilities.apply(cap_mask)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if spec.no_new_privs:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)

    step.current = "exec"
    _execute(spec.args, env)


def _lookup(name: str, env: list[str]) -> str:
    """The path execve should run: PATH search inside the container."""
    if "/" in name:
        return name
    path = DEFAULT_PATH
    for e in env:
        if e.startswith("PATH="):
            path = e[5:]
    for directory in path.split(":"):
        candidate = f"{directory or '.'}/{name}"
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o111:
            return candidate
    raise _ChildError("notfound", f'exec: "{name}": executable file not found in $PATH')


def _execute(args: list[str], env: list[str]) -> None:
    if not args:
        raise StartError("no command specified", "exec")
    name = args[0]
    path = _lookup(name, env)
    try:
        os.execve(path, args, dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            if "/" in name:
                raise _ChildError("notfound", f"stat {name}: no such file or directory") from None
            raise _ChildError("notfound", f'exec: "{name}": no such file or directory') from None
        if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM, errno.EISDIR):
            raise _ChildError("noexec", f'exec: "{name}": permission denied') from None
        raise _ChildError("noexec", f'exec: "{name}": {e.strerror}') from None
