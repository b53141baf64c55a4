"""`berth volume create|ls|inspect|rm|prune`."""

from __future__ import annotations

import click

from berth.core.cli import filters as filters_
from berth.core.cli import output
from berth.core.cli.main import CONTEXT, get_engine
from berth.core.errors import InvalidArgument, NotFound


def _pairs(values, what: str, bare: bool = False) -> dict[str, str]:
    """key=value pairs; with `bare`, a KEY alone is KEY="" (Docker's --label KEY)."""
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not key or not (sep or bare):
            raise InvalidArgument(f"invalid {what} '{v}': must be key=value")
        out[key] = value
    return out


@click.group("volume", context_settings=CONTEXT)
def volume():
    """Manage volumes."""


@volume.command("create", context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("-d", "--driver", help="Specify volume driver name (default from the config: local).")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options (key=value).")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume (key=value).")
@click.option("--name", "name_opt", help="Specify volume name.")
def create(name, driver, opts, labels, name_opt):
    """Create a volume."""
    vol = get_engine().volumes.create(name or name_opt, driver, _pairs(opts, "option"), _pairs(labels, "label", bare=True))
    click.echo(vol["Name"])


@volume.command("ls", context_settings=CONTEXT)
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (dangling=true|false, driver=, name=, label=).")
@click.option("--format", "fmt", help="Format output using a Go template.")
def ls(quiet, filters, fmt):
    """List volumes."""
    engine = get_engine()
    flt = filters_.parse(filters, ("dangling", "driver", "name", "label"))
    rows = []
    for vol in engine.volumes.list(flt):
        rows.append({"Driver": vol["Driver"], "Name": vol["Name"], "Mountpoint": vol["Mountpoint"],
                     "Scope": vol["Scope"], "Labels": ",".join(f"{k}={v}" for k, v in (vol["Labels"] or {}).items()),
                     "CreatedAt": vol["CreatedAt"]})
    if quiet:
        for r in rows:
            click.echo(r["Name"])
        return
    output.table(rows, [("Driver", "DRIVER"), ("Name", "VOLUME NAME")], fmt)


@volume.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
def inspect(names, fmt):
    """Display detailed information on one or more volumes."""
    engine = get_engine()
    output.inspect_each(names, lambda name: engine.volumes.inspect(name), fmt)


@volume.command("rm", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
def rm(names, force):
    """Remove one or more volumes."""
    engine = get_engine()

    def remove(name):
        try:
            engine.volumes.remove(name, force=force)
            click.echo(name)
        except NotFound:
            if not force:  # -f: a missing one is not an error
                raise

    output.each(names, remove)


@volume.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>').")
def prune(all_, force, filters):
    """Remove unused local volumes."""
    accepts = filters_.prune_accepts(filters_.parse(filters))
    removed = get_engine().volumes.prune(all_, accepts)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo()
    click.echo("Total reclaimed space: 0B")


volume.add_command(ls, "list")
volume.add_command(rm, "remove")
