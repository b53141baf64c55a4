"""`berth run` and `berth create`, without click.

These are the commands people time, so their flags live in tables
(berth.core.cli.flags) that both click and a click-free parser read:
`fast()` takes `berth [GLOBAL FLAGS] run|create ...` straight from the
console script, and hands anything unusual (`--help`, a bad flag) back to
click. core/cli/containers.py builds the click commands from the same
tables and calls the same functions.
"""

from __future__ import annotations

import os
import signal
import sys

from berth.core.cli.base import make_engine, overrides, reported
from berth.core.cli.flags import Fallback, Flag, parse
from berth.core.errors import BerthError, ExitCode, InvalidArgument

# run/create/exec keep -h free for --hostname, as Docker does.
RUN_CONTEXT = {"help_option_names": ["--help"], "max_content_width": 100,
               "allow_interspersed_args": False}
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q

CREATE_FLAGS = [
    Flag("-a", "--attach", kind="multiple", metavar="STREAM", help="Attach to STDIN, STDOUT or STDERR."),
    Flag("-i", "--interactive", kind="bool", help="Keep STDIN open even if not attached."),
    Flag("-t", "--tty", kind="bool", help="Allocate a pseudo-TTY."),
    Flag("--name", help="Assign a name to the container."),
    Flag("-e", "--env", kind="multiple", help="Set environment variables."),
    Flag("--env-file", kind="multiple", help="Read in a file of environment variables."),
    Flag("-w", "--workdir", help="Working directory inside the container."),
    Flag("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
    Flag("-h", "--hostname", help="Container host name."),
    Flag("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
    Flag("-l", "--label", dest="labels", kind="multiple", help="Set meta data on a container."),
    Flag("--rm", dest="auto_remove", kind="bool", help="Automatically remove the container when it exits."),
    Flag("--read-only", kind="bool", help="Mount the container's root filesystem as read only."),
    Flag("-m", "--memory", help="Memory limit."),
    Flag("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap."),
    Flag("--cpus", type=float, help="Number of CPUs."),
    Flag("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)."),
    Flag("--shm-size", help="Size of /dev/shm."),
    Flag("--log-driver", help="Logging driver for the container."),
    Flag("--log-opt", kind="multiple", help="Log driver options."),
    Flag("--net", "--network", dest="network", help="Connect a container to a network (none, host)."),
    Flag("-p", "--publish", kind="multiple", help="Publish a container's port(s) to the host."),
    Flag("-P", "--publish-all", kind="bool", help="Publish all exposed ports to random ports."),
    Flag("--expose", kind="multiple", help="Expose a port or a range of ports."),
    Flag("--link", dest="links", kind="multiple", help="Add link to another container."),
    Flag("--restart", default="no", help="Restart policy to apply when a container exits (no, always, unless-stopped, on-failure[:N])."),
    Flag("--stop-signal", help="Signal to stop the container."),
    Flag("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
    Flag("--cap-add", kind="multiple", help="Add Linux capabilities."),
    Flag("--cap-drop", kind="multiple", help="Drop Linux capabilities."),
    Flag("-v", "--volume", dest="volumes", kind="multiple", help="Bind mount a volume."),
    Flag("--mount", dest="mounts", kind="multiple", help="Attach a filesystem mount to the container."),
    Flag("--tmpfs", kind="multiple", help="Mount a tmpfs directory."),
    Flag("--volumes-from", kind="multiple", help="Mount volumes from the specified container(s)."),
    Flag("--pull", choices=("missing", "always", "never"), default="missing", help="Pull image before running."),
    Flag("-q", "--quiet", kind="bool", help="Suppress the pull output."),
    Flag("--platform", help="Set platform if server is multi-platform capable."),
    Flag("--cidfile", help="Write the container ID to the file."),
    Flag("--label-file", kind="multiple", help="Read in a line delimited file of labels."),
    Flag("--add-host", kind="multiple", help="Add a custom host-to-IP mapping (host:ip)."),
    Flag("--dns", kind="multiple", help="Set custom DNS servers."),
    Flag("--dns-search", kind="multiple", help="Set custom DNS search domains."),
    Flag("--dns-option", "--dns-opt", kind="multiple", help="Set DNS options."),
    Flag("--ip", help="IPv4 address (e.g., 172.30.100.104)."),
    Flag("--network-alias", "--net-alias", kind="multiple", help="Add network-scoped alias for the container."),
    Flag("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)."),
    Flag("--privileged", kind="bool", help="Give extended privileges to this container."),
    Flag("--init", kind="bool", help="Run an init inside the container that forwards signals and reaps processes."),
    Flag("--device", kind="multiple", help="Add a host device to the container."),
    Flag("--device-cgroup-rule", kind="multiple", help="Add a rule to the cgroup allowed devices list."),
    Flag("--ulimit", kind="multiple", help="Ulimit options."),
    Flag("--security-opt", kind="multiple", help="Security Options."),
    Flag("--group-add", kind="multiple", help="Add additional groups to join."),
    Flag("--sysctl", kind="multiple", help="Sysctl options."),
    Flag("--pid", help="PID namespace to use."),
    Flag("--ipc", help="IPC mode to use."),
    Flag("--uts", help="UTS namespace to use."),
    Flag("--userns", help="User namespace to use."),
    Flag("--cgroupns", help="Cgroup namespace to use (host|private)."),
    Flag("--oom-score-adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)."),
    Flag("--oom-kill-disable", kind="bool", help="Disable OOM Killer."),
    Flag("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)."),
    Flag("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)."),
    Flag("--memory-reservation", help="Memory soft limit."),
    Flag("--volume-driver", help="Optional volume driver for the container."),
    # health checks (berth.core.containers.health)
    Flag("--health-cmd", help="Command to run to check health."),
    Flag("--health-interval", help="Time between running the check (ms|s|m|h) (default 0s)."),
    Flag("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
    Flag("--health-start-interval", help="Time between running the check during the start period (ms|s|m|h) "
                                         "(default 0s)."),
    Flag("--health-start-period", help="Start period for the container to initialize before starting "
                                       "health-retries countdown (ms|s|m|h) (default 0s)."),
    Flag("--health-timeout", help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)."),
    Flag("--no-healthcheck", kind="bool", help="Disable any container-specified HEALTHCHECK."),
]

RUN_FLAGS = [
    Flag("-d", "--detach", kind="bool", help="Run container in background and print container ID."),
    Flag("--sig-proxy", kind="switch", default=True, help="Proxy received signals to the process."),
    Flag("--detach-keys", help="Override the key sequence for detaching a container."),
    *CREATE_FLAGS,
]


def fast(global_values: dict, rest: list[str]) -> int | None:
    """Run `run|create ...` without click (berth.core.cli.fast); None when
    click must parse this command line (--help, a bad flag)."""
    try:
        values, positionals = parse(RUN_FLAGS if rest[0] == "run" else CREATE_FLAGS, rest[1:])
    except Fallback:
        return None
    if not positionals:
        return None  # click says the image is missing
    command = run if rest[0] == "run" else create
    layer = overrides(global_values)
    return reported(command, lambda: make_engine(layer), positionals[0], positionals[1:], values)


def create(make, image: str, command, values: dict) -> int:
    """`make()`: this command's Engine."""
    with cidfile(values.get("cidfile")) as write_id:
        container = create_container(make(), image, command, values)
        write_id(container.id)
    print(container.id)
    return 0


def cidfile(path: str | None):
    """--cidfile: refused when the file exists (Docker's message), made before
    the container, holds its ID after, removed again if the create fails."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        if not path:
            yield lambda _id: None
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise InvalidArgument(f"container ID file found, make sure the other container isn't running or "
                                  f"delete {path}") from None
        except OSError as exc:
            raise InvalidArgument(f"failed to create the container ID file: open {path}: "
                                  f"{exc.strerror.lower()}") from None
        written = []

        def write_id(container_id: str) -> None:
            os.write(fd, container_id.encode())
            written.append(container_id)

        try:
            yield write_id
        finally:
            os.close(fd)
            if not written:
                os.unlink(path)

    return cm()


def run(make, image: str, command, values: dict) -> int:
    """`make()`: this command's Engine. The container's monitor forks first
    and makes its own (berth.core.containers.standby): it loads the runtime and
    the drivers (the network driver too) while we create the container."""
    from berth.core.containers.standby import Standby

    values = dict(values)
    detach, sig_proxy, detach_keys = values.pop("detach"), values.pop("sig_proxy"), values.pop("detach_keys")
    standby = Standby(make, network=values.get("network") or "default")
    try:
        engine = make()
        with cidfile(values.get("cidfile")) as write_id:
            container = create_container(engine, image, command, values, detach=detach)
            write_id(container.id)
        service = engine.containers
        try:
            if detach:
                service.start(container, standby=standby)
                print(container.id)
                return 0
            container = service.start(container, attach_wait=True, standby=standby)
        except BerthError as exc:
            _auto_remove(engine, container)
            raise exc if detach else _as_run_error(exc) from None
        except BaseException:
            _auto_remove(engine, container)
            raise
    finally:
        standby.cancel()  # unless the container was handed to it
    return attach_foreground(engine, container, sig_proxy=sig_proxy, detach_keys=detach_keys)


def _auto_remove(engine, container) -> None:
    """`run --rm` whose start failed (a hook refused it, the runtime could not
    start it): the container goes, as it would have on exit."""
    if not container.host_config.get("AutoRemove"):
        return
    try:
        engine.containers.remove(container.id, force=True)
    except BerthError:
        pass


def create_container(engine, image_name, command, kw, detach=False):
    try:
        opts = _build_options(engine, image_name, command, kw, detach)
        image = _resolve_image(engine, image_name, kw.get("pull") or "missing", platform=opts.platform,
                               quiet=kw.get("quiet"))
        from berth.core.containers.mounts import with_image_volumes

        with_image_volumes(engine, opts, image)
        container = engine.containers.create(opts, image)
    except BerthError as exc:
        raise _as_run_error(exc) from None
    for warning in opts.warnings:
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    return container


def _as_run_error(exc: BerthError) -> BerthError:
    """run/create: berth's own failures exit 125, the command's 126/127 stay."""
    if exc.exit_code in (126, 127, 125):
        return exc
    return ExitCode(exc.message, 125)


def _key_values(items, what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"{what}\" flag")
        out[key] = value
    return out


def _build_options(engine, image, command, kw, detach=False):
    from berth.core.containers import hostconfig
    from berth.core.containers.container import CreateOptions, parse_restart
    from berth.core.plumbing.units import ram_in_bytes

    parse_restart(kw["restart"])
    memory = ram_in_bytes(kw["memory"]) if kw["memory"] else None
    swap = None
    if kw["memory_swap"]:
        swap = -1 if kw["memory_swap"] == "-1" else ram_in_bytes(kw["memory_swap"])
    if kw["auto_remove"] and kw["restart"] not in ("no", ""):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    return CreateOptions(
        image=image, command=list(command), name=kw["name"], entrypoint=kw["entrypoint"], env=list(kw["env"]),
        env_files=list(kw["env_file"]), workdir=kw["workdir"], user=kw["user"], hostname=kw["hostname"],
        labels=hostconfig.read_labels(kw["label_file"], kw["labels"]), tty=kw["tty"], interactive=kw["interactive"],
        console_size=_console_size() if kw["tty"] else None,
        attach=list(kw["attach"]), detach=detach, auto_remove=kw["auto_remove"], read_only=kw["read_only"],
        memory=memory, memory_swap=swap, cpus=kw["cpus"], pids_limit=kw["pids_limit"],
        log_driver=kw["log_driver"], log_opts=_key_values(kw["log_opt"], "--log-opt"), network=kw["network"],
        restart=kw["restart"], stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"],
        cap_add=list(kw["cap_add"]), cap_drop=list(kw["cap_drop"]),
        shm_size=ram_in_bytes(kw["shm_size"]) if kw["shm_size"] else None,
        mounts=_mounts(engine, kw),
        publish=list(kw["publish"]), publish_all=kw["publish_all"], expose=list(kw["expose"]),
        links=list(kw["links"]), host_config=hostconfig.from_flags(kw), platform=kw["platform"],
        endpoint=_endpoint(kw), healthcheck=_healthcheck(kw),
    )


def _healthcheck(kw) -> dict | None:
    """--health-* and --no-healthcheck: Config.Healthcheck, or None (the image's applies)."""
    if not any(kw.get(dest) for dest in ("health_cmd", "health_interval", "health_retries", "health_start_interval",
                                         "health_start_period", "health_timeout", "no_healthcheck")):
        return None  # the common case imports nothing more
    from berth.core.containers import health

    return health.from_flags(kw)


def _endpoint(kw) -> dict:
    """--ip, --network-alias, --mac-address: the primary network's EndpointSettings."""
    from berth.core.containers import hostconfig

    out = {}
    if kw["ip"]:
        try:
            out["IPAMConfig"] = {"IPv4Address": hostconfig.ip_address(kw["ip"])}
        except ValueError as exc:
            raise hostconfig.bad_value(kw["ip"], "--ip", str(exc)) from None
    if kw["network_alias"]:
        out["Aliases"] = list(kw["network_alias"])
    if kw["mac_address"]:
        out["MacAddress"] = hostconfig.mac_address(kw["mac_address"])
    return out


def _mounts(engine, kw) -> list[dict]:
    """The volume seam: -v/--mount/--tmpfs/--volumes-from parsed by berth.core.containers.mounts."""
    if not (kw["volumes"] or kw["mounts"] or kw["tmpfs"] or kw["volumes_from"]):
        return []
    from berth.core.containers import mounts

    return mounts.from_flags(engine, volumes=kw["volumes"], mounts=kw["mounts"], tmpfs=kw["tmpfs"],
                             volumes_from=kw["volumes_from"], volume_driver=kw["volume_driver"])


def _resolve_image(engine, name: str, pull: str = "missing", platform: str | None = None, quiet: bool = False):
    """The image, pulled first with --pull always, or when missing (Docker's "Unable to find image");
    with --platform, an image of another platform counts as missing."""
    from berth.core.errors import NotFound
    from berth.core.oci import reference as refs

    wanted = None
    if platform:
        from berth.core.oci.platform import parse_platform

        wanted = parse_platform(platform)
    if pull != "always":
        familiar = refs.parse(name).familiar
        try:
            image = engine.images.get(name)
        except NotFound:
            image = None
        if image is not None and (wanted is None or _platform_matches(image, wanted)):
            return image
        if pull == "never":
            if image is None:
                raise NotFound(f"No such image: {familiar}")
            raise NotFound(f"image with reference {familiar} was found but does not match the specified "
                           f"platform: wanted {platform}, actual: {_platform_of(image)}")
        if not quiet:
            print(f"Unable to find image '{familiar}' locally", file=sys.stderr, flush=True)
    from berth.core.cli.progress import ProgressView
    from berth.core.images import transfer  # a pull's modules: only when one is needed

    # Docker's pull output, on stderr: stdout stays the container's (or create's ID)
    view = ProgressView(sys.stderr.isatty(), quiet, stream=sys.stderr)
    result = transfer.pull(engine, name, platform=platform, progress=view, on_start=view.begin)[0]
    view.end(result)
    return result.image


def _platform_of(image) -> str:
    cfg = image.config
    return "/".join(p for p in (cfg.get("os") or "linux", cfg.get("architecture") or "", cfg.get("variant")) if p)


def _platform_matches(image, wanted) -> bool:
    os_name, arch, variant = wanted
    cfg = image.config
    return ((cfg.get("os") or "linux") == os_name and cfg.get("architecture") == arch
            and (variant is None or cfg.get("variant") in (None, variant)))


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's --detach-keys: "ctrl-p,ctrl-q", "a,ctrl-@"."""
    if not text:
        return DETACH_KEYS
    out = b""
    for key in text.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            c = key[5]
            out += bytes([(ord(c.upper()) - 64) & 0x7F if c != "@" else 0])
        elif len(key) == 1:
            out += key.encode()
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return out


def attach_foreground(engine, container, *, sig_proxy=True, detach_keys=None, stdin=None) -> int:
    """Stream a started container's stdio here; return its exit code."""
    from berth.core.containers import attach

    cfg = container.config
    tty = bool(cfg.get("Tty"))
    want_in = cfg.get("AttachStdin") if stdin is None else stdin
    stdin_fd = 0 if want_in else None
    stdout_fd = 1 if cfg.get("AttachStdout") else None
    stderr_fd = 2 if cfg.get("AttachStderr") else None
    engine.emit("container", "attach", container.id, container.attrs())
    keys = parse_detach_keys(detach_keys) if (tty and stdin_fd is not None) or detach_keys else None
    restore = raw_terminal(0) if tty and stdin_fd is not None and os.isatty(0) else None
    old_handlers = {}
    if sig_proxy and not tty:
        pid, start = container.pid, container.state.get("PidStart")

        def forward(signum, _frame):
            from berth.core.containers.container import alive

            if alive(pid, start):
                os.kill(pid, signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            old_handlers[sig] = signal.signal(sig, forward)
    try:
        code = attach.attach(str(engine.containers.run_dir(container.id) / "attach.sock"),
                              stdin_fd=stdin_fd, stdout_fd=stdout_fd, stderr_fd=stderr_fd, tty=tty,
                              detach_keys=keys)
    except (FileNotFoundError, ConnectionRefusedError):
        code = None  # the container already finished
    finally:
        if restore:
            restore()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
    if code is not None:
        return code
    after = engine.containers.load(container.id)
    if after is not None and after.running:
        if keys:  # detached by the user
            if tty:
                print()
            return 0
        after = engine.containers.wait_exit(after)
    if after is None:
        return 0
    return int(after.state.get("ExitCode") or 0)


def raw_terminal(fd: int):
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)

    def restore():
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    return restore


def _console_size() -> tuple[int, int] | None:
    """Rows and columns of the terminal on our stdin or stdout, if any."""
    from berth.core.containers.attach import window_size

    for fd in (0, 1):
        if os.isatty(fd):
            return window_size(fd)
    return None

