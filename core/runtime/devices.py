"""The minimal /dev of a container: a tmpfs with a handful of device nodes.

Runs in the child before pivot_root; `dev` is the host path of the
container's /dev, already resolved inside the rootfs.
"""

import os
import stat

from berth.core.plumbing.records import Record
from berth.core.runtime import syscalls as sc
from berth.core.runtime.errors import StartError

# name, major, minor (all character devices, mode 0666 like Docker)
NODES = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
    ("urandom", 1, 9), ("tty", 5, 0),
)
LINKS = (
    ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"),
)


class Device(Record):
    """A device node to make in the container's /dev (--device, --privileged).

    path: its path in the container (under /dev); kind "c" or "b"; mode: the
    file's permission bits; permissions: the cgroup access ("rwm").
    """

    REQUIRED = ("path", "kind", "major", "minor")
    FIELDS = {"mode": 0o666, "uid": 0, "gid": 0, "permissions": "rwm"}

    @property
    def rule(self) -> str:
        """Its device cgroup allow rule, "c 10:229 rwm"."""
        return f"{self.kind} {self.major}:{self.minor} {self.permissions}"


def host_device(host_path: str, path: str, permissions: str = "rwm") -> list[Device]:
    """The device node at `host_path` (every node under it, for a directory) as Devices at `path`."""
    try:
        st = os.stat(host_path)
    except OSError as exc:
        raise StartError(f'error gathering device information while adding custom device "{host_path}": '
                         f"{exc.strerror.lower()}", "devices") from None
    if stat.S_ISDIR(st.st_mode):
        out = []
        for entry in sorted(os.listdir(host_path)):
            found = _node(f"{host_path}/{entry}", f"{path}/{entry}", permissions)
            out += [found] if found else []
        return out
    found = _node(host_path, path, permissions, st)
    if found is None:
        raise StartError(f'error gathering device information while adding custom device "{host_path}": '
                         "not a device node", "devices")
    return [found]


def _node(host_path: str, path: str, permissions: str, st=None) -> Device | None:
    st = st or os.stat(host_path, follow_symlinks=False)
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return None
    return Device(path=path, kind="c" if stat.S_ISCHR(st.st_mode) else "b", major=os.major(st.st_rdev),
                  minor=os.minor(st.st_rdev), mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                  permissions=permissions)


_NOT_HOST_DEVICES = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console", "/dev/ptmx",
                     "/dev/.lxc", "/dev/.lxd-mounts", "/dev/.udev")


def host_devices() -> list[Device]:
    """Every device node of the host's /dev (--privileged), as Docker's HostDevices."""
    out = []
    for directory, dirs, files in os.walk("/dev"):
        dirs[:] = [d for d in dirs if f"{directory}/{d}" not in _NOT_HOST_DEVICES]
        for name in files:
            path = f"{directory}/{name}"
            if path in _NOT_HOST_DEVICES:
                continue
            try:
                found = _node(path, path, "rwm")
            except OSError:
                continue
            if found is not None:
                out.append(found)
    return out


def populate(dev: str, shm_size: int, console_fd: int | None = None, devices=(), shm_source: str | None = None) -> None:
    """Fill the fresh tmpfs at `dev`: nodes, devpts, shm, mqueue, links.

    console_fd: the pty slave to bind on /dev/console (tty containers).
    devices: more Device nodes (their paths under /dev); one of the default
    nodes' names is replaced. shm_source: a host directory bound on /dev/shm
    (a shared IPC namespace's) instead of a tmpfs of its own; "" leaves
    /dev/shm empty (--ipc none).
    """
    old_umask = os.umask(0)
    try:
        for name, major, minor in NODES:
            os.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        for d in devices:
            _make_node(dev, d)
        for name in ("pts", "shm", "mqueue"):
            os.mkdir(f"{dev}/{name}", 0o755)
        for name, target in LINKS:
            os.symlink(target, f"{dev}/{name}")
        if console_fd is not None:
            os.close(os.open(f"{dev}/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    finally:
        os.umask(old_umask)
    sc.mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    if shm_source:
        sc.mount(shm_source, f"{dev}/shm", None, sc.MS_BIND)
    elif shm_source is None:
        sc.mount("shm", f"{dev}/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                 f"mode=1777,size={shm_size}")
    try:
        sc.mount("mqueue", f"{dev}/mqueue", "mqueue",
                 sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    except OSError:
        pass  # optional, as in Docker
    if console_fd is not None:
        # By name: an fd's mount belongs to the caller's mount namespace,
        # and the kernel refuses to bind from another namespace.
        sc.mount(os.ttyname(console_fd), f"{dev}/console", None, sc.MS_BIND)


def under_dev(device: Device) -> bool:
    """Whether the node goes in the container's /dev tmpfs (else in its root filesystem)."""
    return os.path.normpath(device.path).startswith("/dev/")


def _make_node(dev: str, device: Device) -> None:
    """mknod `device` under the container's /dev (resolved: `dev` is the host path of it)."""
    if not under_dev(device):
        return  # made in the root filesystem by filesystem.prepare
    rel = os.path.normpath(device.path).removeprefix("/dev/")
    target = f"{dev}/{rel}"
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    make_node_at(target, device)


def make_node_at(target: str, device: Device) -> None:
    """mknod `device` at the host path `target` (already resolved inside the container), replacing what is there."""
    old_umask = os.umask(0)
    try:
        _replace_with_node(target, device)
    finally:
        os.umask(old_umask)


def _replace_with_node(target: str, device: Device) -> None:
    if os.path.lexists(target):
        os.unlink(target)
    kind = stat.S_IFCHR if device.kind == "c" else stat.S_IFBLK
    os.mknod(target, device.mode | kind, os.makedev(device.major, device.minor))
    os.chown(target, device.uid, device.gid, follow_symlinks=False)


_TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): unlock the pty's slave
_TIOCGPTPEER = 0x5441  # the slave of a master, opened without a path (Linux 4.13)
_PTMX = os.makedev(5, 2)


def open_pty(pid: int | None) -> tuple[int, int]:
    """(master, slave) for an exec's terminal, from the devpts of the container whose process is
    `pid` (its /dev/pts/ptmx), as runc allocates it: inside, the terminal is that devpts's
    /dev/pts/N, so `tty` and ttyname() name it. Both close-on-exec. The host's pair (os.openpty)
    when the container's devpts cannot be reached."""
    import fcntl
    import struct

    if pid:
        try:
            # O_PATH + O_NOFOLLOW, then the node checked: whatever the container put at that path,
            # only a ptmx is ever opened.
            path_fd = os.open(f"/proc/{pid}/root/dev/pts/ptmx", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            path_fd = None
        if path_fd is not None:
            try:
                st = os.fstat(path_fd)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == _PTMX:
                    master = os.open(f"/proc/self/fd/{path_fd}", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
                    try:
                        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
                        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
                        return master, slave
                    except OSError:
                        os.close(master)
            except OSError:
                pass
            finally:
                os.close(path_fd)
    return os.openpty()
