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
    seccomp: True installs berth's default seccomp filter (runtime.seccomp);
    False is Docker's --security-opt seccomp=unconfined; bytes are a
    compiled filter (runtime.seccomp.compile_profile of a Docker profile).
    no_new_privs: PR_SET_NO_NEW_PRIVS (off by default, as Docker: setuid
    programs work; --security-opt no-new-privileges sets it).
    group_add: more supplementary groups (names from the container's
    /etc/group, or numbers), Docker's --group-add.
    rlimits: (resource name, soft, hard) triples (runtime.rlimits.NUMBERS; -1
    is unlimited), set before the user changes; a hard limit above the
    current one needs CAP_SYS_RESOURCE.
    """

    REQUIRED = ("args",)
    FIELDS = {"env": [], "cwd": "/", "user": "", "tty": False, "stdin": None, "stdout": None, "stderr": None,
              "cap_add": [], "cap_drop": [], "no_new_privs": False, "seccomp": True, "group_add": [],
              "rlimits": []}


class ContainerSpec(ProcessSpec):
    """A container's first process plus the container around it.

    rootfs: the prepared (already mounted) root filesystem directory (a Path).
    netns: None = a new empty network namespace with loopback up;
    "host" = stay in the caller's; any other string = path of a network
    namespace to join (/proc/PID/ns/net, /run/netns/x).
    files: container path -> host file to bind (hostname, hosts,
    resolv.conf prepared by the caller); same as bind Mounts.
    cgroup_name: the container id; None runs without a cgroup of its own.
    Its cgroup is mounted at /sys/fs/cgroup, read-only unless privileged.
    limits: a cgroups.Limits (the default: none).
    pidns, ipcns, utsns, cgroupns: like netns (None: a new one, "host": the
    caller's, else a /proc/PID/ns/* path to join; utsns and cgroupns take
    None or "host"). A joined or host UTS namespace keeps its hostname.
    privileged: /sys and the cgroup mount writable (the caller also passes
    every capability, every host device, no masked paths, no seccomp).
    writable_cgroups: the cgroup mount writable (--security-opt writable-cgroups).
    devices: devices.Device nodes made in the container's /dev.
    sysctls: {"net.ipv4.ip_forward": "1"} written in the container's
    namespaces before its /proc/sys turns read-only.
    oom_score_adj: written to /proc/self/oom_score_adj (None: inherited).
    init: host path of an init (runtime.init.find()) bound at
    /sbin/docker-init and run as PID 1 with args after "--".
    shm_source: a host directory bound on /dev/shm (None: a tmpfs of
    shm_size; "": nothing mounted there), for a shared IPC namespace.
    """

    REQUIRED = ("args", "rootfs")
    FIELDS = {**ProcessSpec.FIELDS, "hostname": None, "readonly_rootfs": False, "mounts": [], "files": {},
              "netns": None, "masked_paths": DEFAULT_MASKED_PATHS, "readonly_paths": DEFAULT_READONLY_PATHS,
              "shm_size": 64 * 1024 * 1024, "limits": None, "cgroup_parent": "berth", "cgroup_name": None,
              "pidns": None, "ipcns": None, "utsns": None, "cgroupns": None, "privileged": False, "devices": [],
              "sysctls": {}, "oom_score_adj": None, "init": None, "shm_source": None, "writable_cgroups": False}

    def __init__(self, **values):
        super().__init__(**values)
        if self.limits is None:
            self.limits = Limits()
