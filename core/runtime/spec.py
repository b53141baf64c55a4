"""What to run and how: the specs the container engine fills in.

ProcessSpec is what `exec_process` needs; ContainerSpec adds the container
itself (root filesystem, mounts, namespaces, limits) for `start`.
All fields are keyword-only (berth.core.plumbing.records).
"""

from berth.core.plumbing.records import Record
from berth.core.runtime.cgroups import Limits

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's defaults (moby oci/defaults.go).
DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


class Mount(Record):
    """One mount inside the container.

    type "bind": `source` is a host path (must exist); a directory or file
    mount point is created to match. type "tmpfs" (or any other filesystem
    type): `source` is the device/label, `options` its data. `options` uses
    Docker/OCI words: ro, rw, nosuid, nodev, noexec, bind, rbind (the
    default for binds), private, rprivate, slave, rslave, shared, rshared;
    anything else (size=64m, mode=1777) is passed to the filesystem.
    `destination` is resolved inside the rootfs, never following a symlink
    out of it.
    """

    REQUIRED = ("destination",)
    FIELDS = {"source": "", "type": "bind", "options": []}


class ProcessSpec(Record):
    """A process to run inside a container (the part `berth exec` needs).

    user: "", "uid", "uid:gid", "name", "name:group", resolved from the
    container's own /etc/passwd and /etc/group (supplementary groups too).
    env: "KEY=value" strings; PATH from here is used for the command lookup
    (Docker's default PATH when absent); HOME is added from passwd if absent.
    stdin/stdout/stderr: caller's fds to dup2 onto 0/1/2 in the child (None:
    inherit the caller's). With tty=True pass the pty slave as all three:
    the child does setsid + TIOCSCTTY on it.
    cap_add/cap_drop: capability names ("NET_ADMIN", "CAP_NET_ADMIN", "ALL")
    applied on top of Docker's default set.
    seccomp: install berth's default seccomp filter (runtime.seccomp);
    False is Docker's --security-opt seccomp=unconfined.
    """

    REQUIRED = ("args",)
    FIELDS = {"env": [], "cwd": "/", "user": "", "tty": False, "stdin": None, "stdout": None, "stderr": None,
              "cap_add": [], "cap_drop": [], "no_new_privs": True, "seccomp": True}


class ContainerSpec(ProcessSpec):
    """A container's first process plus the container around it.

    rootfs: the prepared (already mounted) root filesystem directory (a Path).
    netns: None = a new empty network namespace with loopback up;
    "host" = stay in the caller's; any other string = path of a network
    namespace to join (/proc/PID/ns/net, /run/netns/x).
    files: container path -> host file to bind (hostname, hosts,
    resolv.conf prepared by the caller); same as bind Mounts.
    cgroup_name: the container id; None runs without a cgroup of its own.
    limits: a cgroups.Limits (the default: none).
    """

    REQUIRED = ("args", "rootfs")
    FIELDS = {**ProcessSpec.FIELDS, "hostname": None, "readonly_rootfs": False, "mounts": [], "files": {},
              "netns": None, "masked_paths": DEFAULT_MASKED_PATHS, "readonly_paths": DEFAULT_READONLY_PATHS,
              "shm_size": 64 * 1024 * 1024, "limits": None, "cgroup_parent": "berth", "cgroup_name": None}

    def __init__(self, **values):
        super().__init__(**values)
        if self.limits is None:
            self.limits = Limits()
