"""The container's filesystem view, built in its new mount namespace.

Order: propagation made slave (nothing ever propagates back to the host),
rootfs bound onto itself, /proc, /dev, /sys, the caller's mounts, masked and
read-only paths, then pivot_root. Every destination is resolved inside the
rootfs (paths.resolve_in_root), then opened O_PATH and checked, and the mount
is made on /proc/self/fd/N so a symlink swapped in cannot redirect it.
"""

import os

from berth.core.runtime import devices
from berth.core.runtime import syscalls as sc
from berth.core.runtime.paths import make_inside, resolve_in_root
from berth.core.runtime.proc import write_file

_FLAG_WORDS = {
    "ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
    "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
    "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
    "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
    "noatime": (sc.MS_NOATIME, True), "relatime": (sc.MS_RELATIME, True),
    "strictatime": (sc.MS_STRICTATIME, True), "sync": (sc.MS_SYNCHRONOUS, True),
}
_PROPAGATION_WORDS = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


def parse_options(options) -> tuple[int, int, str, bool]:
    """Split option words into (flags, propagation, fs data, recursive bind)."""
    flags = 0
    propagation = 0
    data = []
    recursive = True
    for word in options:
        if word in _FLAG_WORDS:
            bit, on = _FLAG_WORDS[word]
            flags = flags | bit if on else flags & ~bit
        elif word in _PROPAGATION_WORDS:
            propagation = _PROPAGATION_WORDS[word]
        elif word == "bind":
            recursive = False
        elif word == "rbind":
            recursive = True
        elif word:
            data.append(word)
    return flags, propagation, ",".join(data), recursive


class _Step:
    """Names the step in progress, for the error the caller sees."""

    current = "setup"


step = _Step()


def _open_inside(root: str, host_path: str) -> int:
    """O_PATH fd on host_path, verified to be inside root after resolution."""
    fd = os.open(host_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        os.close(fd)
        raise OSError(1, "mount point resolves outside the container", host_path)
    return fd


def _mount_at(root: str, host_path: str, source, fstype, flags, data=None) -> None:
    fd = _open_inside(root, host_path)
    try:
        sc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
    finally:
        os.close(fd)


def _remount_at(root: str, host_path: str, flags: int) -> None:
    """Change the flags of the bind mount at host_path (e.g. read-only)."""
    fd = _open_inside(root, host_path)
    try:
        sc.mount(None, f"/proc/self/fd/{fd}", None, sc.MS_REMOUNT | sc.MS_BIND | flags)
    finally:
        os.close(fd)


def mount_one(root: str, m) -> None:
    """Mount runtime.spec.Mount `m` inside `root` (resolved there, its mount point made)."""
    step.current = f"mount {m.destination}"
    flags, propagation, data, recursive = parse_options(m.options)
    if m.type == "bind":
        source = os.path.realpath(m.source)  # host side: the user's own path
        is_dir = os.path.isdir(source)
        if not is_dir and not os.path.exists(source):
            raise OSError(2, "bind source path does not exist", m.source)
        target = make_inside(root, m.destination, is_dir=is_dir)
        bind = sc.MS_BIND | (sc.MS_REC if recursive else 0)
        _mount_at(root, target, source, None, bind)
        if flags:
            _remount_at(root, target, flags)
    else:
        target = make_inside(root, m.destination)
        if m.type == "tmpfs" and not any(w in m.options for w in ("exec", "suid", "dev")):
            flags |= sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        _mount_at(root, target, m.source or m.type, m.type, flags, data or None)
    if propagation:
        _mount_at(root, target, None, None, propagation)


def prepare(spec, console_fd: int | None, new_netns: bool, cgroup=None) -> None:
    """Build the container's mounts and pivot_root into spec.rootfs.

    Runs in the child, in its new mount (and pid) namespace, as root.
    Leaves the process in the new root with cwd "/". `cgroup`: the
    container's cgroups.Cgroup, mounted at /sys/fs/cgroup. Returns None, or
    an fd on /proc/sys/net (opened before it turned read-only) for
    write_net_sysctls once the caller has wired the network.
    """
    root = os.path.realpath(spec.rootfs)
    step.current = "make mounts private"
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    step.current = "bind rootfs"
    sc.mount(root, root, None, sc.MS_BIND | sc.MS_REC)

    step.current = "mount /proc"
    proc = make_inside(root, "/proc")
    _mount_at(root, proc, "proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    net_sysctls = None
    for key, value in spec.sysctls.items():
        step.current = f"sysctl {key}"
        if key.startswith("net."):  # once the interfaces exist: see write_net_sysctls
            net_sysctls = net_sysctls or os.open(f"{proc}/sys/net", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            write_sysctl(proc, key, value)

    step.current = "mount /dev"
    dev = make_inside(root, "/dev")
    _mount_at(root, dev, "tmpfs", "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME,
              "mode=755,size=65536k")
    # `dev` has no symlink left in it (resolved and checked): the fresh
    # tmpfs is reached through it.
    devices.populate(dev, spec.shm_size, console_fd, spec.devices, spec.shm_source)

    step.current = "mount /sys"
    sys_dir = make_inside(root, "/sys")
    sys_flags = (0 if spec.privileged else sc.MS_RDONLY) | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    if new_netns:
        _mount_at(root, sys_dir, "sysfs", "sysfs", sys_flags)
    else:  # sysfs shows the netns of the mounter: bind the host's, read-only
        _mount_at(root, sys_dir, "/sys", None, sc.MS_BIND | sc.MS_REC)
        _remount_at(root, sys_dir, sys_flags)
    if cgroup is not None:
        _mount_cgroup(root, cgroup, readonly=not (spec.privileged or spec.writable_cgroups))

    mounts = list(spec.mounts)
    from berth.core.runtime.spec import Mount
    for dest, host_file in spec.files.items():
        mounts.append(Mount(destination=dest, source=str(host_file), type="bind"))
    # Parents before children, as Docker sorts them.
    mounts.sort(key=lambda m: len([p for p in m.destination.split("/") if p]))
    for m in mounts:
        mount_one(root, m)

    for node in spec.devices:
        if not devices.under_dev(node):  # --device /dev/x:/elsewhere: in the root filesystem, as runc
            step.current = f"device {node.path}"
            parent = make_inside(root, os.path.dirname(os.path.normpath(node.path)))
            devices.make_node_at(f"{parent}/{os.path.basename(node.path)}", node)

    for path in spec.masked_paths:
        step.current = f"mask {path}"
        host = resolve_in_root(root, path)
        if not os.path.lexists(host):
            continue
        if os.path.isdir(host):
            _mount_at(root, host, "tmpfs", "tmpfs", sc.MS_RDONLY)
        else:
            _mount_at(root, host, "/dev/null", None, sc.MS_BIND)

    for path in spec.readonly_paths:
        step.current = f"make {path} read-only"
        host = resolve_in_root(root, path)
        if not os.path.lexists(host):
            continue
        _mount_at(root, host, host, None, sc.MS_BIND | sc.MS_REC)
        _remount_at(root, host, sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)

    step.current = "pivot_root"
    # pivot_root(".", "."): the old root ends up stacked on the new one and
    # is lazily detached; needs no put_old directory, works on a read-only
    # rootfs.
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    return net_sysctls


def write_sysctl(proc: str, key: str, value: str) -> None:
    """Write a (namespaced) sysctl through the container's fresh /proc."""
    if ".." in key.split(".") or not all(key.split(".")):
        raise OSError(22, "invalid sysctl name", key)
    write_file(f"{proc}/sys/{key.replace('.', '/')}", value)


def write_net_sysctls(net_fd: int, sysctls: dict) -> None:
    """The net.* sysctls, through the fd prepare() returned (the read-only
    /proc/sys is a mount above it), once the interfaces (eth0 ...) exist."""
    try:
        for key, value in sysctls.items():
            if key.startswith("net."):
                step.current = f"sysctl {key}"
                parts = key.split(".")[1:]
                if ".." in parts or not all(parts):
                    raise OSError(22, "invalid sysctl name", key)
                fd = os.open("/".join(parts), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=net_fd)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
    finally:
        os.close(net_fd)


def _mount_cgroup(root: str, cgroup, readonly: bool) -> None:
    """The container's own cgroup at /sys/fs/cgroup (each v1 hierarchy in its
    directory on a tmpfs), read-only unless privileged, as Docker's."""
    step.current = "mount /sys/fs/cgroup"
    target = make_inside(root, "/sys/fs/cgroup")
    ro = sc.MS_RDONLY if readonly else 0
    flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    if cgroup.v2:
        _mount_at(root, target, cgroup.dirs[""], None, sc.MS_BIND)
        _remount_at(root, target, ro | flags)
        return
    _mount_at(root, target, "tmpfs", "tmpfs", flags, "mode=755")
    for path in cgroup.dirs.values():
        inner = f"{target}/{_hierarchy_name(path, cgroup)}"
        os.mkdir(inner, 0o755)
        _mount_at(root, inner, path, None, sc.MS_BIND)
        _remount_at(root, inner, ro | flags)
    if readonly:
        _mount_at(root, target, None, None, sc.MS_REMOUNT | sc.MS_RDONLY | flags)


def _hierarchy_name(path: str, cgroup) -> str:
    """"cpu,cpuacct" of /sys/fs/cgroup/cpu,cpuacct/berth/<id>."""
    rel = f"{cgroup.parent}/{cgroup.name}" if cgroup.parent else cgroup.name
    return os.path.basename(path[: -len(rel) - 1])


def make_root_readonly() -> None:
    """Remount the (pivoted) root read-only, after the cwd was created."""
    step.current = "make rootfs read-only"
    sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
