"""Image commands: images, import, load, save, tag, rmi, history, image ..."""

from __future__ import annotations

import sys

import click

from berth.core.cli import filters as filters_
from berth.core.cli import flags, output
from berth.core.cli.fast import IMAGES_FLAGS, IMPORT_FLAGS, import_image, list_images
from berth.core.cli.main import CONTEXT, get_engine
from berth.core.errors import InvalidArgument, NotFound
from berth.core.images.image import containers_using


@click.command("images", context_settings=CONTEXT)
@click.argument("repository", required=False)
@flags.click_options(IMAGES_FLAGS)
def images(repository, **values):
    """List images."""
    return list_images(get_engine(), repository, values)


@click.command("import", context_settings=CONTEXT)
@click.argument("source")
@click.argument("repository", required=False)
@flags.click_options(IMPORT_FLAGS)
def import_(source, repository, **values):
    """Import the contents from a tarball to create a filesystem image.

    SOURCE is a file path or - for standard input.
    """
    return import_image(get_engine(), source, repository, values)


@click.command("tag", context_settings=CONTEXT)
@click.argument("source")
@click.argument("target")
def tag(source, target):
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    get_engine().images.tag(source, target)


@click.command("rmi", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents.")
def rmi(names, force, no_prune):
    """Remove one or more images."""
    engine = get_engine()

    def remove(name):
        for action, what in engine.images.remove(name, force=force, in_use_by=containers_using(engine)):
            click.echo(f"{action}: {what}")

    output.each(names, remove)


class _HistoryCommand(click.Command):
    """-H/--human as Docker's boolean flag: alone it is true, -H=false / --human=false turn it off."""

    def parse_args(self, ctx, args):
        out = []
        for arg in args:
            name, eq, value = arg.partition("=")
            out.append(f"--human={value if eq else 'true'}" if name in ("-H", "--human") else arg)
            if arg == "--":
                out += args[len(out):]
                break
        return super().parse_args(ctx, out)


@click.command("history", cls=_HistoryCommand, context_settings=CONTEXT)
@click.argument("name")
@click.option("-H", "--human", default=True, type=bool, metavar="", help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="Format output using a Go template.")
def history(name, human, no_trunc, quiet, fmt):
    """Show the history of an image."""
    from berth.core.plumbing.units import ago, human_size

    engine = get_engine()
    image = engine.images.get(name)
    rows = []
    for entry in engine.images.history(image):
        ident = entry["Id"]
        if ident != "<missing>" and not no_trunc:
            ident = ident.split(":", 1)[1][:12]
        created_by = entry["CreatedBy"]
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": ident,
            "CreatedSince": (ago(entry["Created"]) if human else entry["Created"]) if entry["Created"] else "",
            "CreatedAt": entry["Created"],
            "CreatedBy": created_by,
            "Size": human_size(entry["Size"]) if human else str(entry["Size"]),
            "Comment": entry["Comment"],
        })
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    output.table(rows, [("ID", "IMAGE"), ("CreatedSince", "CREATED"), ("CreatedBy", "CREATED BY"),
                        ("Size", "SIZE"), ("Comment", "COMMENT")], fmt)


@click.command("inspect", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format output using a Go template.")
def image_inspect(names, fmt):
    """Display detailed information on one or more images."""
    engine = get_engine()
    output.inspect_each(names, lambda name: engine.images.inspect(engine.images.get(name)), fmt)


@click.command("load", context_settings=CONTEXT)
@click.option("-i", "--input", "input_", type=click.Path(dir_okay=False), help="Read from tar archive file, instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_, quiet):
    """Load an image from a tar archive or STDIN (docker-archive or OCI layout)."""
    from berth.core.images.transfer import load_archive

    engine = get_engine()
    if input_:
        try:
            stream = open(input_, "rb")
        except OSError as exc:
            raise NotFound(f"open {input_}: {exc.strerror.lower()}") from None
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    with stream:
        for line in load_archive(engine, stream):
            if not quiet:
                click.echo(line)


@click.command("save", context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", "output_", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "oci-archive"]), default="docker-archive",
              help="Archive format.")
def save(names, output_, fmt):
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    from berth.core.images.transfer import save_archive

    engine = get_engine()
    if not output_:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        save_archive(engine, list(names), sys.stdout.buffer, fmt)
        return
    tmp = f"{output_}.berth-tmp"
    try:
        with open(tmp, "wb") as out:
            save_archive(engine, list(names), out, fmt)
        os.replace(tmp, output_)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@click.command("prune", context_settings=CONTEXT)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
def prune(all_, force, filters):
    """Remove unused images."""
    from berth.core.plumbing.units import human_size

    accepts = filters_.prune_accepts(filters_.parse(filters))
    what = "all images without at least one container associated to them" if all_ else "all dangling images"
    if not force and not click.confirm(f"WARNING! This will remove {what}.\n"
                                       "Are you sure you want to continue?", default=False):
        return
    deleted, reclaimed = prune_images(get_engine(), all_, accepts)
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


def prune_images(engine, all_: bool, accepts) -> tuple[list[str], int]:
    """Remove dangling images (every unused one with `all_`) that `accepts(created, labels)`;
    print Docker's "Deleted Images:" list; (deleted, bytes reclaimed)."""
    in_use = containers_using(engine)
    deleted: list[str] = []
    reclaimed = 0
    for img in engine.images.all():
        if (img.tags and not all_) or in_use(img.id) or engine.images.children(img.id) or \
                not accepts(img.created, (img.config.get("config") or {}).get("Labels")):
            continue
        for action, what in engine.images.remove(img.id, force=True):
            if action == "Deleted":
                deleted.append(what)
        reclaimed += img.size
    engine.images.collect_garbage()
    if deleted:
        click.echo("Deleted Images:")
        for d in deleted:
            click.echo(f"deleted: {d}")
        click.echo()
    return deleted, reclaimed


@click.group("image", cls=click.Group, context_settings=CONTEXT)
def image():
    """Manage images."""


image.add_command(images, "ls")
image.add_command(images, "list")
image.add_command(image_inspect, "inspect")
image.add_command(rmi, "rm")
image.add_command(tag, "tag")
image.add_command(history, "history")
image.add_command(import_, "import")
image.add_command(load, "load")
image.add_command(save, "save")
image.add_command(prune, "prune")


def _add_build() -> None:
    from berth.core.cli.build import build

    image.add_command(build, "build")


_add_build()


def _add_registry_commands() -> None:
    try:
        from berth.core.cli import registry
    except ImportError:
        return
    for name in ("pull", "push"):
        if hasattr(registry, name):
            image.add_command(getattr(registry, name), name)


_add_registry_commands()
