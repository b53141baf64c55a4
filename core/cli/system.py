"""System commands: inspect (any object), events, info, version."""

from __future__ import annotations

import json
import platform
import sys

import click

from berth.core.cli import flags
from berth.core.cli.fast import INSPECT_FLAGS, inspect_objects
from berth.core.cli.main import CONTEXT, LazyGroup, get_engine


@click.command("inspect", context_settings=CONTEXT)
@flags.click_options(INSPECT_FLAGS)
@click.argument("names", nargs=-1, required=True)
def inspect(names, **values):
    """Return low-level information on berth objects (containers, then images)."""
    return inspect_objects(get_engine(), *names, values=values)


# -- events -------------------------------------------------------------------------------


def _event_line(event: dict) -> str:
    """Docker's default line: `<time> container create <id> (image=busybox, name=x)`."""
    from datetime import datetime, timezone

    ns = event["timeNano"]
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    attrs = event["Actor"].get("Attributes") or {}
    tail = f" ({', '.join(f'{k}={v}' for k, v in sorted(attrs.items()))})" if attrs else ""
    return f"{stamp}.{ns % 1_000_000_000:09d}Z {event['Type']} {event['Action']} {event['Actor']['ID']}{tail}"


@click.command("events", context_settings=CONTEXT)
@click.option("--since", help="Show all events created since timestamp.")
@click.option("--until", help="Stream events until this timestamp.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", help="Format the output using the given Go template, or 'json'.")
def events(since, until, filters, fmt):
    """Get real time events from berth."""
    from berth.core.cli import filters as filters_
    from berth.core.plumbing import events as events_
    from berth.core.plumbing.units import parse_since

    parsed = filters_.parse(filters)
    since_ns = int(parse_since(since) * 1e9) if since else None
    until_ns = int(parse_since(until) * 1e9) if until else None
    engine = get_engine()
    render = None
    if fmt and fmt != "json":
        from berth.core.cli import template

        render = lambda e: template.render(fmt, _template_event(e))  # noqa: E731
    out = sys.stdout
    try:
        for event in engine.journal.read(since_ns=since_ns, until_ns=until_ns, follow=until_ns is None):
            if not events_.matches(event, parsed):
                continue
            if fmt == "json":
                line = json.dumps(event, separators=(",", ":"))
            elif render:
                line = render(event)
            else:
                line = _event_line(event)
            out.write(line + "\n")
            out.flush()
    except KeyboardInterrupt:
        return 0


def _template_event(event: dict) -> dict:
    """Docker's template fields: .Type .Action .Actor.ID .ID .Status .From .Time .TimeNano."""
    out = dict(event)
    out.setdefault("ID", event["Actor"]["ID"])
    out.setdefault("Status", event.get("status", event["Action"]))
    out.setdefault("From", event.get("from", ""))
    out["Time"] = event["time"]
    out["TimeNano"] = event["timeNano"]
    return out


# -- info / version ----------------------------------------------------------------------------


def _version() -> str:
    from berth.core import __version__

    return __version__


@click.group("plugin", context_settings=CONTEXT)
def plugin():
    """Manage plugins."""


@plugin.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display plugin names.")
@click.option("--format", "fmt", help="Format output using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
def plugin_ls(quiet, fmt, no_trunc):
    """List plugins: each installed berth plugin, its version, its drivers, and
    whether it is enabled (a plugin that failed to load is not)."""
    from berth.core import plugins
    from berth.core.cli import output

    rows = []
    for p in plugins.describe():
        drivers = ",".join(p["Drivers"])
        error = p["Error"] if no_trunc or len(p["Error"]) <= 60 else p["Error"][:59] + "…"
        rows.append(dict(p, Drivers=drivers, Enabled=str(p["Enabled"]).lower(), Error=error,
                         Version=p["Version"] or "-"))
    if quiet:
        for r in rows:
            click.echo(r["Name"])
        return
    output.table(rows, [("Name", "NAME"), ("Version", "VERSION"), ("Drivers", "DRIVERS"), ("Enabled", "ENABLED"),
                        ("Error", "ERROR")], fmt)


@click.command("info", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template.")
def info(fmt):
    """Display system-wide information."""
    engine = get_engine()
    from berth.core.engine import info_data

    data = info_data(engine)
    if fmt:
        if fmt == "json":
            click.echo(json.dumps(data))
        else:
            from berth.core.cli import template

            click.echo(template.render(fmt, data))
        return
    lines = [
        "Server:",
        f" Containers: {data['Containers']}",
        f"  Running: {data['ContainersRunning']}",
        f"  Paused: {data['ContainersPaused']}",
        f"  Stopped: {data['ContainersStopped']}",
        f" Images: {data['Images']}",
        f" Server Version: {data['ServerVersion']}",
        f" Storage Driver: {data['Driver']}",
    ]
    lines += [f"  {k}: {v}" for k, v in data["DriverStatus"]]
    lines += [
        f" Logging Driver: {data['LoggingDriver']}",
        f" Cgroup Driver: {data['CgroupDriver']}",
        f" Cgroup Version: {data['CgroupVersion']}",
        " Plugins:",
    ]
    lines += [f"  {k}: {' '.join(v)}" for k, v in data["Plugins"].items()]
    lines.append(" Berth Plugins:")
    for p in data["BerthPlugins"]:
        what = (" ".join(p["Drivers"]) or "(no drivers)") if p["Enabled"] else f"disabled: {p['Error']}"
        lines.append(f"  {p['Name']} ({p['Distribution'] or p['Module']} {p['Version']}".rstrip() + f"): {what}")
    lines += [
        f" Default Runtime: {data['DefaultRuntime']}",
        f" Kernel Version: {data['KernelVersion']}",
        f" Operating System: {data['OperatingSystem']}",
        f" OSType: {data['OSType']}",
        f" Architecture: {data['Architecture']}",
        f" CPUs: {data['NCPU']}",
        f" Total Memory: {_gib(data['MemTotal'])}",
        f" Name: {data['Name']}",
        f" Berth Root Dir: {data['BerthRootDir']}",
        f" Berth Run Dir: {data['RunRoot']}",
    ]
    click.echo("\n".join(lines))


def _gib(n: int) -> str:
    """Docker prints Total Memory in binary units: 15.53GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{n}B"
        n /= 1024
    return f"{n}"


@click.command("version", context_settings=CONTEXT)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template.")
def version(fmt):
    """Show the berth version information."""
    data = {
        "Client": {"Version": _version(), "ApiVersion": "1.43", "GoVersion": f"python{platform.python_version()}",
                   "Os": "linux", "Arch": platform.machine()},
        "Server": {"Version": _version(), "Os": "linux", "Arch": platform.machine(),
                   "KernelVersion": platform.release(), "Components": [{"Name": "berth", "Version": _version()}]},
    }
    if fmt:
        if fmt == "json":
            click.echo(json.dumps(data))
        else:
            from berth.core.cli import template

            click.echo(template.render(fmt, data))
        return
    c, s = data["Client"], data["Server"]
    click.echo("\n".join([
        "Client:",
        f" Version:           {c['Version']}",
        f" API version:       {c['ApiVersion']}",
        f" Python version:    {platform.python_version()}",
        f" OS/Arch:           {c['Os']}/{c['Arch']}",
        "",
        "Server:",
        " Engine:",
        f"  Version:          {s['Version']}",
        f"  OS/Arch:          {s['Os']}/{s['Arch']}",
        f"  Kernel Version:   {s['KernelVersion']}",
    ]))


# -- system ... --------------------------------------------------------------------------------

SYSTEM_COMMANDS = {
    # The Engine API lives beside the CLI (berth.core.api), never imported by it: named here as a string.
    "service": ("berth.core.api.command:service", "Serve the Docker Engine API on a socket"),
    "check": ("berth.core.cli.check:check", "Check the store against the disk, and repair it"),
    "df": ("berth.core.cli.system:df", "Show berth disk usage"),
    "prune": ("berth.core.cli.system:prune", "Remove unused data"),
    "events": ("berth.core.cli.system:events", "Get real time events from the server"),
    "info": ("berth.core.cli.system:info", "Display system-wide information"),
}


@click.group("system", cls=LazyGroup, lazy=SYSTEM_COMMANDS, context_settings=CONTEXT)
def system():
    """Manage berth."""


@click.command("df", context_settings=CONTEXT)
@click.option("--format", "fmt", help="Format output using a Go template, 'table ...' or 'json'.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
def df(fmt, verbose):
    """Show disk usage."""
    from berth.core.cli import output
    from berth.core.engine import disk_usage
    from berth.core.plumbing.units import human_size

    usage = disk_usage(get_engine())
    if verbose and (not fmt or fmt == "json"):
        return _df_verbose(usage, fmt)
    images = [img for img, _ in usage["images"]]
    active_images = [img for img, users in usage["images"] if users]
    image_size = sum(img.size for img in images)
    image_free = image_size - sum(img.size for img in active_images)
    containers = [c for c, _ in usage["containers"]]
    sizes = {c.id: size for c, size in usage["containers"]}
    running = [c for c in containers if c.running]
    volumes = [v for v, _, _ in usage["volumes"]]
    volume_sizes = {v["Name"]: size for v, size, _ in usage["volumes"]}
    used_volumes = [v for v, _, users in usage["volumes"] if users]
    volume_size = sum(volume_sizes.values())
    volume_free = volume_size - sum(volume_sizes[v["Name"]] for v in used_volumes)

    def share(free: int, total: int) -> str:
        return f"{human_size(free)} ({free * 100 // total if total else 0}%)"

    rows = [
        {"Type": "Images", "TotalCount": len(images), "Active": len(active_images), "Size": human_size(image_size),
         "Reclaimable": share(image_free, image_size)},
        {"Type": "Containers", "TotalCount": len(containers), "Active": len(running),
         "Size": human_size(sum(sizes.values())),
         "Reclaimable": share(sum(sizes[c.id] for c in containers if not c.running), sum(sizes.values()))},
        {"Type": "Local Volumes", "TotalCount": len(volumes), "Active": len(used_volumes),
         "Size": human_size(volume_size), "Reclaimable": share(volume_free, volume_size)},
        {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": "0B", "Reclaimable": "0B"},
    ]
    output.table(rows, [("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Active", "ACTIVE"), ("Size", "SIZE"),
                        ("Reclaimable", "RECLAIMABLE")], fmt)


def _df_verbose(usage: dict, fmt: str | None) -> None:
    """`system df -v`: Docker's four sections, a table each (or one JSON object with --format json)."""
    import json

    from berth.core.cli import template
    from berth.core.cli.containers import _ps_row
    from berth.core.oci import reference as refs
    from berth.core.plumbing.units import ago, human_size

    images = []
    for img, users in usage["images"]:
        shared = usage["shared"][img.id]
        for name in img.tags or [None]:
            ref = refs.parse(name) if name else None
            images.append({"Repository": ref.familiar_name if ref else "<none>", "Tag": ref.tag if ref else "<none>",
                           "ID": img.short_id, "CreatedSince": ago(img.created), "Size": human_size(img.size),
                           "SharedSize": human_size(shared), "UniqueSize": human_size(img.size - shared),
                           "Containers": str(users)})
    containers = [{**_ps_row(c, False), "LocalVolumes": str(sum(1 for m in c.mounts if m.get("Type") == "volume")),
                   "Size": human_size(size)} for c, size in usage["containers"]]
    volumes = [{"Name": v["Name"], "Links": str(users), "Size": human_size(size)} for v, size, users in usage["volumes"]]
    if fmt == "json":
        click.echo(json.dumps({"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}))
        return

    def section(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> str:
        return f"{title}\n\n" + template.columns([[t for _, t in columns]] + [[r[f] for f, _ in columns] for r in rows])

    click.echo("\n".join([
        section("Images space usage:", images, [
            ("Repository", "REPOSITORY"), ("Tag", "TAG"), ("ID", "IMAGE ID"), ("CreatedSince", "CREATED"),
            ("Size", "SIZE"), ("SharedSize", "SHARED SIZE"), ("UniqueSize", "UNIQUE SIZE"),
            ("Containers", "CONTAINERS")]),
        section("Containers space usage:", containers, [
            ("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"), ("LocalVolumes", "LOCAL VOLUMES"),
            ("Size", "SIZE"), ("RunningFor", "CREATED"), ("Status", "STATUS"), ("Names", "NAMES")]),
        section("Local Volumes space usage:", volumes, [("Name", "VOLUME NAME"), ("Links", "LINKS"), ("Size", "SIZE")]),
        "Build cache usage: 0B\n\n" + template.columns([["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED",
                                                         "USAGE", "SHARED"]]),
    ]), nl=False)


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>').")
def prune(all_, force, volumes, filters):
    """Remove unused data."""
    from berth.core.cli import filters as filters_
    from berth.core.cli.images import prune_images
    from berth.core.plumbing.units import human_size

    accepts = filters_.prune_accepts(filters_.parse(filters))
    if not force:
        what = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            what.append("all anonymous volumes not used by at least one container")
        what += ["all images without at least one container associated to them" if all_ else "all dangling images",
                 "unused build cache"]
        click.echo("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what), nl=False)
        if not click.confirm("\nAre you sure you want to continue?", default=False):
            return
    engine = get_engine()
    sections = [("Deleted Containers:", engine.containers.prune(lambda c: accepts(c.created, c.config.get("Labels"))))]
    if volumes:
        sections.append(("Deleted Volumes:", engine.volumes.prune(False)))
    sections.append(("Deleted Networks:", engine.networks.prune()))
    for title, names in sections:
        if names:
            click.echo(title)
            for name in names:
                click.echo(name)
            click.echo()
    _, reclaimed = prune_images(engine, all_, accepts)
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")
