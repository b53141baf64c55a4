"""`berth build`: thin over berth.core.build (the Engine API's POST /build calls the same builder)."""

from __future__ import annotations

import sys

import click

from berth.core.cli.main import CONTEXT, get_engine
from berth.core.errors import ExitCode, InvalidArgument


def _pairs(items, what: str, from_environment: bool = False) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"{what}\" flag: invalid key")
        out[key] = value if sep else (None if from_environment else "")
    return out


class _BuildCommand(click.Command):
    """Takes Docker's spelling of boolean flags too: --rm=false, --no-cache=true, -q=true."""

    BOOLEANS = {"--rm": ("--rm", "--no-rm"), "--force-rm": ("--force-rm", None), "--no-cache": ("--no-cache", None),
                "--pull": ("--pull", None), "-q": ("-q", None), "--quiet": ("-q", None)}

    def parse_args(self, ctx, args):
        out = []
        for i, arg in enumerate(args):
            if arg == "--":
                out.extend(args[i:])
                break
            name, sep, value = arg.partition("=")
            if sep and name in self.BOOLEANS and value.lower() in ("true", "false", "1", "0"):
                on, off = self.BOOLEANS[name]
                chosen = on if value.lower() in ("true", "1") else off
                if chosen:
                    out.append(chosen)
                continue
            out.append(arg)
        return super().parse_args(ctx, out)


@click.command("build", cls=_BuildCommand, context_settings=CONTEXT)
@click.argument("path", metavar="PATH | URL | -")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]", help="Name and optionally a tag (repeatable).")
@click.option("-f", "--file", "dockerfile", metavar="FILE",
              help="Name of the Dockerfile (default: 'PATH/Dockerfile'; - for standard input).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Set build-time variables.")
@click.option("--target", metavar="STAGE", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set metadata for an image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--network", metavar="MODE", help="Networking mode for the RUN instructions during build.")
@click.option("--iidfile", metavar="FILE", help="Write the image ID to the file.")
@click.option("--rm/--no-rm", "remove", default=True, show_default=True,
              help="Remove intermediate containers after a build (also --rm=false).")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers.")
def build(path, tags, dockerfile, build_args, target, no_cache, pull, labels, quiet, network, iidfile, remove,
          force_rm):
    """Build an image from a Dockerfile.

    PATH is the build context: a directory, or - to read a tar archive of it
    (or a Dockerfile alone) from standard input.
    """
    from berth.core.build import BuildFailed, BuildOptions, Context
    from berth.core.build import build as run_build

    options = BuildOptions(tags=list(tags), build_args=_pairs(build_args, "--build-arg", from_environment=True),
                           target=target, no_cache=no_cache, pull=pull, labels=_pairs(labels, "--label"),
                           network=network, remove=remove, force_remove=force_rm)
    engine = get_engine()
    if path == "-":
        if dockerfile == "-":
            raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
        context = Context.from_stream(sys.stdin.buffer, engine.root, dockerfile)
    elif path.startswith(("http://", "https://", "git@", "git://", "github.com/")):
        raise InvalidArgument(f"unable to prepare context: remote contexts ({path}) are not supported by berth")
    else:
        text = sys.stdin.read() if dockerfile == "-" else None
        context = Context.from_directory(path, None if dockerfile == "-" else dockerfile, text)
    if quiet:
        out = _discard
    else:
        def out(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()
    with context:
        try:
            image = run_build(engine, context, options, out)
        except BuildFailed as exc:  # Docker prints a failed RUN's line as it is
            print(exc.message, file=sys.stderr)
            raise ExitCode("", 1) from None
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image.id)
    if quiet:
        click.echo(image.id)


def _discard(text: str) -> None:
    pass
