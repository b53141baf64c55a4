"""The minimal /dev of a container: a tmpfs with a handful of device nodes.

Runs in the child before pivot_root; `dev` is the host path of the
container's /dev, already resolved inside the rootfs.
"""

import os
import stat

from berth.core.runtime import syscalls as sc

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


def populate(dev: str, shm_size: int, console_fd: int | None = None) -> None:
    """Fill the fresh tmpfs at `dev`: nodes, devpts, shm, mqueue, links.

    console_fd: the pty slave to bind on /dev/console (tty containers).
    """
    old_umask = os.umask(0)
    try:
        for name, major, minor in NODES:
            os.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
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
