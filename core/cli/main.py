"""The `berth` command: global flags, lazy subcommands, and the one place
where errors become a line on stderr and Docker's exit code.

Subcommand modules are imported only when their command runs, so
`berth --help` imports click and nothing else of weight.
"""

from __future__ import annotations

import importlib
import sys

import click

from berth.core.cli import flags
from berth.core.cli.base import GLOBAL_FLAGS, make_engine, overrides, reported

# name -> ("module:attribute", one-line help). Order is the --help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("berth.core.cli.containers:run", "Create and run a new container from an image"),
    "create": ("berth.core.cli.containers:create", "Create a new container"),
    "start": ("berth.core.cli.containers:start", "Start one or more stopped containers"),
    "stop": ("berth.core.cli.containers:stop", "Stop one or more running containers"),
    "restart": ("berth.core.cli.containers:restart", "Restart one or more containers"),
    "kill": ("berth.core.cli.containers:kill", "Kill one or more running containers"),
    "pause": ("berth.core.cli.containers:pause", "Pause all processes within one or more containers"),
    "unpause": ("berth.core.cli.containers:unpause", "Unpause all processes within one or more containers"),
    "rm": ("berth.core.cli.containers:rm", "Remove one or more containers"),
    "rename": ("berth.core.cli.containers:rename", "Rename a container"),
    "ps": ("berth.core.cli.containers:ps", "List containers"),
    "wait": ("berth.core.cli.containers:wait", "Block until one or more containers stop, then print their exit codes"),
    "attach": ("berth.core.cli.containers:attach", "Attach local standard input, output, and error streams to a running container"),
    "exec": ("berth.core.cli.containers:exec_", "Execute a command in a running container"),
    "top": ("berth.core.cli.containers:top", "Display the running processes of a container"),
    "logs": ("berth.core.cli.containers:logs", "Fetch the logs of a container"),
    "diff": ("berth.core.cli.containers:diff", "Inspect changes to files or directories on a container's filesystem"),
    "commit": ("berth.core.cli.containers:commit", "Create a new image from a container's changes"),
    "cp": ("berth.core.cli.containers:cp", "Copy files/folders between a container and the local filesystem"),
    "stats": ("berth.core.cli.containers:stats", "Display a live stream of container(s) resource usage statistics"),
    "update": ("berth.core.cli.containers:update", "Update configuration of one or more containers"),
    "export": ("berth.core.cli.containers:export", "Export a container's filesystem as a tar archive"),
    "port": ("berth.core.cli.networks:port", "List port mappings or a specific mapping for the container"),
    "container": ("berth.core.cli.containers:container", "Manage containers"),
    "images": ("berth.core.cli.images:images", "List images"),
    "image": ("berth.core.cli.images:image", "Manage images"),
    "import": ("berth.core.cli.images:import_", "Import the contents from a tarball to create a filesystem image"),
    "load": ("berth.core.cli.images:load", "Load an image from a tar archive or STDIN"),
    "save": ("berth.core.cli.images:save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "tag": ("berth.core.cli.images:tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("berth.core.cli.images:rmi", "Remove one or more images"),
    "history": ("berth.core.cli.images:history", "Show the history of an image"),
    "build": ("berth.core.cli.build:build", "Build an image from a Dockerfile"),
    "pull": ("berth.core.cli.registry:pull", "Download an image from a registry"),
    "push": ("berth.core.cli.registry:push", "Upload an image to a registry"),
    "login": ("berth.core.cli.registry:login", "Log in to a registry"),
    "logout": ("berth.core.cli.registry:logout", "Log out from a registry"),
    "search": ("berth.core.cli.registry:search", "Search Docker Hub or a registry for images"),
    "volume": ("berth.core.cli.volumes:volume", "Manage volumes"),
    "network": ("berth.core.cli.networks:network", "Manage networks"),
    "inspect": ("berth.core.cli.system:inspect", "Return low-level information on berth objects"),
    "events": ("berth.core.cli.system:events", "Get real time events from berth"),
    "info": ("berth.core.cli.system:info", "Display system-wide information"),
    "plugin": ("berth.core.cli.system:plugin", "Manage plugins"),
    "version": ("berth.core.cli.system:version", "Show the berth version information"),
    "system": ("berth.core.cli.system:system", "Manage berth (system service: the Docker Engine API)"),
    "metrics": ("berth.core.cli.metrics:metrics", "Serve Prometheus metrics"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are "module:attr" strings, imported on use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return list(self.lazy) + sorted(n for n in self.commands if n not in self.lazy)

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name not in self.lazy:
            return None
        module, _, attr = self.lazy[name][0].partition(":")
        try:
            command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None  # not built yet: reported as an unknown command
        self.commands[name] = command
        return command

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in self.lazy.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings=CONTEXT)
@flags.click_options(GLOBAL_FLAGS)
@click.version_option(None, "-v", "--version", package_name="berth", message="berth version %(version)s")
@click.pass_context
def cli(ctx, **values):
    """A daemonless container engine whose every driver is a plugin."""
    ctx.obj = overrides(values)


def get_engine(ctx: click.Context | None = None):
    """The Engine for this invocation, built once from config + global flags."""
    ctx = (ctx or click.get_current_context()).find_root()
    if "_engine" not in ctx.meta:
        ctx.meta["_engine"] = make_engine(ctx.obj if isinstance(ctx.obj, dict) else None)
    return ctx.meta["_engine"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's own errors here, everything else in base.reported."""
    sys.exit(reported(_click_main, argv))


def _click_main(argv: list[str] | None):
    try:
        return cli.main(args=argv, prog_name="berth", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group (`berth volume`): its help, as Docker
        click.echo(exc.ctx.get_help())
        return 0
    except click.exceptions.NoSuchOption as exc:
        return _usage_error(exc, f"unknown flag: {exc.option_name}")
    except click.UsageError as exc:
        return _usage_error(exc)
    except click.exceptions.Abort:
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
        return 125


def _usage_error(exc: click.UsageError, message: str | None = None) -> int:
    name = exc.ctx.command_path if exc.ctx else "berth"
    print(message or f"Error: {exc.format_message()}", file=sys.stderr)
    print(f"See '{name} --help'.", file=sys.stderr)
    return 125
