"""Container commands: run, create, start, stop, ps, logs, exec ... and `berth container`.

Thin: parse the flags Docker has, call ContainerService, print what Docker
prints. `run`/`create` failures in berth exit 125 (Docker's rule); a
command that cannot be executed 126, not found 127; otherwise `run` exits
with the container's own status.
"""

from __future__ import annotations

import os
import signal
import sys

import click

from berth.core.cli import filters as filters_
from berth.core.cli import flags, output
from berth.core.cli import run as run_
from berth.core.cli.main import CONTEXT, get_engine
from berth.core.cli.run import CREATE_FLAGS, RUN_CONTEXT, RUN_FLAGS, attach_foreground, raw_terminal
from berth.core.errors import BerthError, ExitCode, InvalidArgument

NO_H_CONTEXT = {"help_option_names": ["--help"], "max_content_width": 100}


# -- run / create (their flags and bodies live in berth.core.cli.run) -----------------


@click.command("create", context_settings=RUN_CONTEXT)
@flags.click_options(CREATE_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def create(image, command, **values):
    """Create a new container."""
    return run_.create(get_engine, image, command, values)


@click.command("run", context_settings=RUN_CONTEXT)
@flags.click_options(RUN_FLAGS)
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(image, command, **values):
    """Create and run a new container from an image."""
    return run_.run(get_engine, image, command, values)


# -- lifecycle ----------------------------------------------------------------------------


@click.command("start", context_settings=CONTEXT)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.option("--all", "all_", is_flag=True, help="Start all containers that are not running (as podman's).")
@click.option("-f", "--filter", "filters", multiple=True,
              help="With --all: restart-policy=POLICY, the containers of that policy Docker's daemon "
                   "restarts when it starts (berth-restart.service).")
@click.argument("containers", nargs=-1)
def start(attach, interactive, detach_keys, all_, filters, containers):
    """Start one or more stopped containers."""
    engine = get_engine()
    service = engine.containers
    if all_:
        if containers:
            raise InvalidArgument("--all does not take container names")
        if attach or interactive:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        containers = _start_all(service, filters_.parse(filters, ("restart-policy",)))
    elif filters:
        raise InvalidArgument("--filter needs --all")
    elif not containers:
        raise click.UsageError("Missing argument 'CONTAINERS...'.", click.get_current_context())
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        container = service.get(containers[0])
        if container.running:
            raise ExitCode(f"container {container.id} is already running", 1)
        container = service.start(container, attach_wait=True)
        return attach_foreground(engine, container, detach_keys=detach_keys, stdin=interactive)

    def one(ref):
        service.start(ref)
        click.echo(ref)

    output.each(containers, one)


def _start_all(service, filters: dict[str, list[str]]) -> list[str]:
    """IDs of the containers `start --all` starts: every one not running, or, with
    restart-policy filters, those of these policies that Docker's daemon brings back at boot."""
    from berth.core.containers.container import restarts_at_boot

    policies = filters.get("restart-policy")
    for policy in policies or ():
        if policy not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidArgument(f"invalid restart policy '{policy}'")
    out = []
    for c in reversed(service.list()):  # oldest first
        if c.running:
            continue
        if policies is not None:
            name = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
            if name not in policies or not restarts_at_boot(c):
                continue
        out.append(c.id)
    return out


@click.command("stop", context_settings=CONTEXT)
@click.option("-t", "--timeout", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "sig", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
def stop(timeout, sig, containers):
    """Stop one or more running containers."""
    service = get_engine().containers

    def one(ref):
        c = service.get(ref)
        if sig:
            c.config["StopSignal"] = sig
        service.stop(c, timeout)
        click.echo(ref)

    output.each(containers, one)


@click.command("restart", context_settings=CONTEXT)
@click.option("-t", "--timeout", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
def restart(timeout, containers):
    """Restart one or more containers."""
    service = get_engine().containers

    def one(ref):
        service.restart(ref, timeout)
        click.echo(ref)

    output.each(containers, one)


@click.command("kill", context_settings=CONTEXT)
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
def kill(sig, containers):
    """Kill one or more running containers."""
    from berth.core.containers.container import signal_number

    signal_number(sig)
    service = get_engine().containers

    def one(ref):
        service.kill(ref, sig)
        click.echo(ref)

    output.each(containers, one)


@click.command("pause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
def pause(containers):
    """Pause all processes within one or more containers."""
    service = get_engine().containers
    output.each(containers, lambda ref: (service.pause(ref), click.echo(ref)))


@click.command("unpause", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
def unpause(containers):
    """Unpause all processes within one or more containers."""
    service = get_engine().containers
    output.each(containers, lambda ref: (service.unpause(ref), click.echo(ref)))


@click.command("rm", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
def rm(force, volumes, link, containers):
    """Remove one or more containers."""
    from berth.core.errors import NotFound

    service = get_engine().containers

    def one(ref):
        try:
            service.remove(ref, force=force, volumes=volumes)
        except NotFound:
            if not force:
                raise
            return  # as Docker: rm -f of a missing container is quiet
        click.echo(ref)

    output.each(containers, one)


@click.command("rename", context_settings=CONTEXT)
@click.argument("container")
@click.argument("new_name")
def rename(container, new_name):
    """Rename a container."""
    get_engine().containers.rename(container, new_name)


@click.command("wait", context_settings=CONTEXT)
@click.argument("containers", nargs=-1, required=True)
def wait(containers):
    """Block until one or more containers stop, then print their exit codes."""
    service = get_engine().containers

    def one(ref):
        c = service.get(ref)
        after = service.wait_exit(c, next_exit=True)  # as Docker's: a restart policy's restart is an exit
        click.echo(int((after or c).state.get("ExitCode") or 0))

    output.each(containers, one)


@click.command("attach", context_settings=CONTEXT)
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("container")
def attach(no_stdin, sig_proxy, detach_keys, container):
    """Attach local standard input, output, and error streams to a running container."""
    engine = get_engine()
    c = engine.containers.get(container)
    if not c.running:
        raise ExitCode("You cannot attach to a stopped container, start it first", 1)
    if c.status == "paused":
        raise ExitCode("You cannot attach to a paused container, unpause it first", 1)
    if c.status == "restarting":
        raise ExitCode("You cannot attach to a restarting container, wait until it is running", 1)
    c.config["AttachStdout"] = c.config["AttachStderr"] = True
    stdin = bool(c.config.get("OpenStdin")) and not no_stdin
    return attach_foreground(engine, c, sig_proxy=sig_proxy, detach_keys=detach_keys, stdin=stdin)


# -- listing ------------------------------------------------------------------------------


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)


def _ps_row(c, no_trunc: bool) -> dict:
    from berth.core.containers.container import status_text
    from berth.core.plumbing.units import ago, go_time

    command = " ".join(c.command)
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    labels = c.config.get("Labels") or {}
    return {
        "ID": c.id if no_trunc else c.short_id,
        "Image": c.image,
        "Command": _quote(command),
        "CreatedAt": go_time(c.created),
        "RunningFor": ago(c.created),
        "Ports": _ports(c),
        "Status": status_text(c),
        "State": c.status,
        "Names": c.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(m.get("Name") or m.get("Source", "") for m in c.mounts),
        "Networks": c.network_mode,
        "Size": "",
    }


def _ports(c) -> str:
    """PORTS column from NetworkSettings.Ports (filled by the network service)."""
    ports = (c.network or {}).get("Ports") or {}
    out = []
    for private, bindings in sorted(ports.items()):
        for b in bindings or []:
            out.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{private}")
        if not bindings:
            out.append(private)
    return ", ".join(out)


@click.command("ps", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", help="Format output using a Go template, 'table ...' or 'json'.")
def ps(all_, quiet, last, latest, no_trunc, size, filters, fmt):
    """List containers."""
    from berth.core.cli import output
    from berth.core.containers.container import matches

    engine = get_engine()
    parsed = filters_.parse(filters)
    containers = engine.containers.list()
    if latest:
        last = 1
    if last >= 0:
        all_ = True
        containers = containers[:last]
    if not all_ and "status" not in parsed:
        containers = [c for c in containers if c.running]
    containers = [c for c in containers if matches(engine, c, parsed)]
    rows = [_ps_row(c, no_trunc) for c in containers]
    if size:
        for c, row in zip(containers, rows):
            row["Size"] = _size(engine, c)
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    columns = [("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"), ("RunningFor", "CREATED"),
               ("Status", "STATUS"), ("Ports", "PORTS"), ("Names", "NAMES")]
    if size:
        columns.append(("Size", "SIZE"))
    output.table(rows, columns, fmt)


def _size(engine, c) -> str:
    from berth.core.plumbing.units import human_size

    try:
        return human_size(engine.containers.storage_for(c).usage(c.id))
    except BerthError:
        return ""


# -- inspect-like ---------------------------------------------------------------------------


@click.command("inspect", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("containers", nargs=-1, required=True)
def container_inspect(fmt, size, containers):
    """Display detailed information on one or more containers."""
    from berth.core.cli import output

    service = get_engine().containers
    found, missing = [], []
    for ref in containers:
        try:
            found.append(service.inspect(service.get(ref)))
        except BerthError as exc:
            missing.append(exc.message)
    output.inspect(found, fmt)
    if missing:
        for m in missing:
            click.echo(f"Error: {m}", err=True)
        raise BerthError("")


@click.command("logs", context_settings=CONTEXT)
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("--tail", "-n", default="all", help="Number of lines to show from the end of the logs.")
@click.option("--since", help="Show logs since timestamp or relative (e.g. 42m).")
@click.option("--until", help="Show logs before a timestamp or relative (e.g. 42m).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("container")
def logs(follow, tail, since, until, timestamps, details, container):
    """Fetch the logs of a container."""
    from datetime import datetime, timezone

    from berth.core.plumbing.units import parse_since

    tail_n = None
    if tail not in ("all", "", None):
        try:
            tail_n = int(tail)
        except ValueError:
            raise InvalidArgument(f"invalid value for \"tail\": {tail}") from None
        if tail_n < 0:
            tail_n = None
    since_dt = datetime.fromtimestamp(parse_since(since), timezone.utc) if since else None
    until_dt = datetime.fromtimestamp(parse_since(until), timezone.utc) if until else None
    service = get_engine().containers
    c = service.get(container)
    entries = service.logs(c, follow=follow, since=since_dt, until=until_dt, tail=tail_n)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for entry in entries:
        target = err if entry.stream == "stderr" else out
        if timestamps:
            target.write(_rfc3339(entry.time).encode() + b" ")
        target.write(entry.line)
        if follow:
            target.flush()
    out.flush()
    err.flush()


def _rfc3339(dt) -> str:
    from datetime import timezone

    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}000Z"


# -- exec -----------------------------------------------------------------------------------


@click.command("exec", context_settings=RUN_CONTEXT)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("--detach-keys", help="Override the key sequence for detaching a container.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(detach, interactive, tty, env, env_file, workdir, user, privileged, detach_keys, container, command):
    """Execute a command in a running container."""
    engine = get_engine()
    service = engine.containers
    c = service.get(container)
    spec = service.exec_spec(c, list(command), env=list(env), env_files=list(env_file), workdir=workdir, user=user,
                             tty=tty, privileged=privileged)
    master = None
    close_after = []
    if detach:
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        spec.stdin = spec.stdout = spec.stderr = null
        close_after.append(null)
    elif tty:
        from berth.core.runtime.devices import open_pty

        master, slave = open_pty(c.pid)  # in the container's own devpts, as runc's
        if os.isatty(0):
            from berth.core.containers.attach import set_window_size, window_size

            size = window_size(0)
            if size:
                set_window_size(slave, *size)
        spec.stdin = spec.stdout = spec.stderr = slave
        close_after.append(slave)
    else:
        if interactive:
            spec.stdin = 0
        else:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            spec.stdin = null
            close_after.append(null)
        spec.stdout, spec.stderr = 1, 2
    # Python ignores SIGPIPE; an ignored signal would stay ignored in the exec'd command.
    signal.signal(signal.SIGPIPE, lambda *_: None)
    signal.signal(signal.SIGXFSZ, lambda *_: None)
    try:
        pid = service.exec_start(c, spec)
    finally:
        for fd in close_after:
            os.close(fd)
    if detach:
        return 0
    if master is not None:
        _pump_pty(master, interactive, pid)
    return service.exec_wait(c, spec, pid)


def _pump_pty(master: int, interactive: bool, pid: int) -> None:
    """Copy between our terminal and an exec'd process's pty until it closes."""
    import selectors

    from berth.core.containers.attach import InputSelector

    restore = raw_terminal(0) if interactive and os.isatty(0) else None
    sel = InputSelector()
    sel.register(master, selectors.EVENT_READ, "pty")
    if interactive:
        sel.register(0, selectors.EVENT_READ, "stdin")
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "pty":
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        return
                    os.write(1, data)
                else:
                    data = os.read(0, 65536)
                    if not data:
                        sel.unregister(0)
                        os.write(master, b"\x04")
                        continue
                    os.write(master, data)
    finally:
        if restore:
            restore()
        sel.close()
        os.close(master)


# -- processes and files ------------------------------------------------------------------


@click.command("top", context_settings={**CONTEXT, "allow_interspersed_args": False})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
def top(container, ps_args):
    """Display the running processes of a container."""
    import subprocess

    engine = get_engine()
    c, pids = engine.containers.top(container)
    args = list(ps_args) or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        out = _ps_from_proc()
    except subprocess.CalledProcessError as exc:
        raise ExitCode(f"Error running top: ps: {exc.stderr.strip()}", 1) from None
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise ExitCode("Couldn't find PID field in ps output", 1)
    col = header.index("PID")
    wanted = set(pids)
    rows = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            rows.append(line)
    click.echo("\n".join(rows))


def _ps_from_proc() -> str:
    """A minimal `ps -ef` when the host has no ps: UID PID PPID CMD."""
    lines = ["UID PID PPID CMD"]
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        ppid = stat[stat.rindex(b")") + 2:].split()[1].decode()
        lines.append(f"{uid} {name} {ppid} {cmd}")
    return "\n".join(lines) + "\n"


@click.command("diff", context_settings=CONTEXT)
@click.argument("container")
def diff(container):
    """Inspect changes to files or directories on a container's filesystem."""
    for change in get_engine().containers.changes(container):
        click.echo(f"{change.kind} {change.path}")


@click.command("commit", context_settings=CONTEXT)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p/--no-pause", "--pause", "pause_", default=True, help="Pause container during commit.")
@click.argument("container")
@click.argument("repository", required=False)
def commit(author, changes, message, pause_, container, repository):
    """Create a new image from a container's changes."""
    image = get_engine().containers.commit(container, repository=repository, message=message, author=author,
                                           changes=list(changes), pause=pause_)
    click.echo(image.id)


@click.command("cp", context_settings=CONTEXT)
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output.")
@click.argument("src")
@click.argument("dest")
def cp(archive, follow_link, quiet, src, dest):
    """Copy files/folders between a container and the local filesystem.

    Use CONTAINER:PATH for the container side; '-' streams a tar archive.
    """
    src_ctr, src_path = _split_cp(src)
    dst_ctr, dst_path = _split_cp(dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise InvalidArgument("must specify at least one container source" if src_ctr is None
                              else "copying between containers is not supported")
    if not src_path or not dst_path:
        raise InvalidArgument(f"{'source' if not src_path else 'destination'} can not be empty")
    service = get_engine().containers
    if src_ctr is not None:
        service.copy_from(src_ctr, src_path, dst_path, follow=follow_link)
    else:
        service.copy_to(dst_ctr, src_path, dst_path, follow=follow_link, archive=archive)


def _binary_size(size: float) -> str:
    """As docker stats prints memory: binary units, two decimals."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.2f}{unit}"
        size /= 1024
    return ""


def _stats_rows(engine, containers, cpu_window: float) -> list[dict]:
    """One row per container: the cgroup figures (runtime.cgroups.read_stats), CPU % over `cpu_window`."""
    import os
    import time

    from berth.core.plumbing.units import human_size
    from berth.core.runtime.cgroups import read_stats

    host_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    before = {c.id: read_stats(c.pid) if c.running and c.pid else None for c in containers}
    start = time.monotonic()
    time.sleep(cpu_window)
    elapsed_ns = (time.monotonic() - start) * 1e9
    rows = []
    for c in containers:
        now = read_stats(c.pid) if c.running and c.pid else None
        first = before.get(c.id)
        if now is None:
            rows.append({"ID": c.short_id, "Container": c.short_id, "Name": c.name, "CPUPerc": "0.00%",
                         "MemUsage": "0B / 0B", "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B",
                         "PIDs": "0"})
            continue
        cpu = (now.cpu_usage_ns - first.cpu_usage_ns) / elapsed_ns * 100 if first else 0.0
        limit = now.memory_limit or host_memory
        limit = min(limit, host_memory)
        rows.append({
            "ID": c.short_id, "Container": c.short_id, "Name": c.name, "CPUPerc": f"{max(cpu, 0.0):.2f}%",
            "MemUsage": f"{_binary_size(now.memory_usage)} / {_binary_size(limit)}",
            "MemPerc": f"{now.memory_usage / limit * 100:.2f}%",
            "NetIO": f"{human_size(now.net_rx)} / {human_size(now.net_tx)}",
            "BlockIO": f"{human_size(now.block_read)} / {human_size(now.block_write)}",
            "PIDs": str(now.pids),
        })
    return rows


@click.command("stats", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--format", "fmt", help="Format output using a Go template, 'table ...' or 'json'.")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("containers", nargs=-1)
def stats(all_, fmt, no_stream, no_trunc, containers):
    """Display a live stream of container(s) resource usage statistics."""
    import io
    import sys

    engine = get_engine()
    service = engine.containers
    columns = [("Container", "CONTAINER ID"), ("Name", "NAME"), ("CPUPerc", "CPU %"),
               ("MemUsage", "MEM USAGE / LIMIT"), ("MemPerc", "MEM %"), ("NetIO", "NET I/O"),
               ("BlockIO", "BLOCK I/O"), ("PIDs", "PIDS")]
    terminal = sys.stdout.isatty()
    while True:
        chosen = [service.get(ref) for ref in containers] if containers else \
            [c for c in reversed(service.list()) if all_ or c.running]
        rows = _stats_rows(engine, chosen, 0.5 if no_stream else 1.0)
        if no_trunc:
            for c, row in zip(chosen, rows):
                row["ID"] = row["Container"] = c.id
        buffer, real = io.StringIO(), sys.stdout
        sys.stdout = buffer
        try:
            output.table(rows, columns, fmt)
        finally:
            sys.stdout = real
        real.write(("\x1b[2J\x1b[H" if terminal and not no_stream else "") + buffer.getvalue())
        real.flush()
        if no_stream:
            return


@click.command("update", context_settings=CONTEXT)
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--cpus", type=float, help="Number of CPUs.")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1).")
@click.option("-m", "--memory", help="Memory limit.")
@click.option("--memory-reservation", help="Memory soft limit.")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap.")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited).")
@click.option("--restart", help="Restart policy to apply when a container exits.")
@click.argument("containers", nargs=-1, required=True)
def update(cpu_shares, cpus, cpuset_cpus, memory, memory_reservation, memory_swap, pids_limit, restart, containers):
    """Update configuration of one or more containers."""
    from berth.core.plumbing.units import ram_in_bytes

    changes: dict = {}
    if cpu_shares is not None:
        changes["CpuShares"] = cpu_shares
    if cpus is not None:
        changes["NanoCpus"] = int(cpus * 1e9)
    if cpuset_cpus is not None:
        changes["CpusetCpus"] = cpuset_cpus
    if memory is not None:
        changes["Memory"] = ram_in_bytes(memory)
    if memory_reservation is not None:
        changes["MemoryReservation"] = ram_in_bytes(memory_reservation)
    if memory_swap is not None:
        changes["MemorySwap"] = -1 if memory_swap == "-1" else ram_in_bytes(memory_swap)
    if pids_limit is not None:
        changes["PidsLimit"] = pids_limit
    if restart is not None:
        name, _, count = restart.partition(":")
        changes["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count) if count.isdigit() else 0}
    if not changes:
        raise InvalidArgument("you must provide one or more flags when using this command")
    service = get_engine().containers
    output.each(containers, lambda ref: (service.update(ref, dict(changes)), click.echo(ref)))


@click.command("export", context_settings=CONTEXT)
@click.option("-o", "--output", "output_", help="Write to a file, instead of STDOUT.")
@click.argument("container")
def export(output_, container):
    """Export a container's filesystem as a tar archive."""
    import os

    service = get_engine().containers
    if not output_:
        if os.isatty(1):
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        service.copy_from(container, "/", "-")
        return
    service.get(container)  # a missing container: no file left behind
    fd = os.open(output_, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        service.copy_from(container, "/", "-", stream_fd=fd)
    except BaseException:
        os.unlink(output_)
        raise
    finally:
        os.close(fd)


def _split_cp(arg: str):
    """CONTAINER:PATH -> (container, path); a local path -> (None, path)."""
    if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
        return None, arg
    ref, _, path = arg.partition(":")
    return ref, path


# -- the container group --------------------------------------------------------------------


@click.command("prune", context_settings=CONTEXT)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
def prune(force, filters):
    """Remove all stopped containers."""
    accepts = filters_.prune_accepts(filters_.parse(filters))
    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    engine = get_engine()
    removed = engine.containers.prune(lambda c: accepts(c.created, c.config.get("Labels")))
    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


@click.group("container", context_settings=CONTEXT)
def container():
    """Manage containers."""


for _name, _cmd in (("create", create), ("run", run), ("start", start), ("stop", stop), ("restart", restart),
                    ("kill", kill), ("pause", pause), ("unpause", unpause), ("rm", rm), ("remove", rm),
                    ("rename", rename), ("ls", ps), ("ps", ps), ("list", ps), ("wait", wait), ("attach", attach),
                    ("exec", exec_), ("top", top), ("logs", logs), ("diff", diff), ("commit", commit), ("cp", cp), ("export", export), ("stats", stats), ("update", update),
                    ("inspect", container_inspect), ("prune", prune)):
    container.add_command(_cmd, _name)


def _add_port() -> None:
    from berth.core.cli.networks import port

    container.add_command(port, "port")


_add_port()
