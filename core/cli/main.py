"""The `berth` command: global flags, lazy subcommands, and the one place
where errors become a line on stderr and Docker's exit code.

Subcommand modules are imported only when their command runs, so
`berth --help` imports click and nothing else of weight.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from berth.core.errors import BerthError

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
    "version": ("berth.core.cli.system:version", "Show the berth version information"),
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
@click.option("--root", metavar="DIR", help="Persistent data directory (default /var/lib/berth).")
@click.option("--runroot", metavar="DIR", help="Runtime state directory (default /run/berth).")
@click.option("-s", "--storage-driver", metavar="NAME", help="Storage driver (overlay2, vfs, btrfs ...).")
@click.option("-l", "--log-level", metavar="LEVEL", help="debug, info, warning or error.")
@click.option("--log-format", type=click.Choice(["console", "json"]), help="Format of berth's own logs.")
@click.version_option(package_name="berth", message="berth version %(version)s")
@click.pass_context
def cli(ctx, root, runroot, storage_driver, log_level, log_format):
    """A daemonless container engine whose every driver is a plugin."""
    overrides: dict = {}
    engine_over = {k: v for k, v in (("root", root), ("runroot", runroot), ("log_level", log_level),
                                     ("log_format", log_format)) if v}
    if engine_over:
        overrides["engine"] = engine_over
    if storage_driver:
        overrides["storage"] = {"driver": storage_driver}
    ctx.obj = overrides


def get_engine(ctx: click.Context | None = None):
    """The Engine for this invocation, built once from config + global flags."""
    ctx = (ctx or click.get_current_context()).find_root()
    if not isinstance(ctx.obj, dict) or "_engine" not in ctx.meta:
        from berth.core import config, log
        from berth.core.engine import Engine

        cfg = config.load(ctx.obj if isinstance(ctx.obj, dict) else None)
        log.setup(cfg.get("engine.log_level"), cfg.get("engine.log_format"))
        ctx.meta["_engine"] = Engine(cfg)
    return ctx.meta["_engine"]


class ExitCode(BerthError):
    """An error with an exit code of the command's choosing (125 for a failed run)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every error to one line and Docker's exit code."""
    try:
        rv = cli.main(args=argv, prog_name="berth", standalone_mode=False)
    except click.exceptions.NoSuchOption as exc:
        _usage_error(exc, f"unknown flag: {exc.option_name}")
    except click.UsageError as exc:
        _usage_error(exc)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
        sys.exit(125)
    except BerthError as exc:
        if exc.message:
            print(f"Error: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: one line for the user, the trace on request
        if os.environ.get("BERTH_DEBUG"):
            raise
        print(f"Error: internal error: {type(exc).__name__}: {exc} (set BERTH_DEBUG=1 for the trace)",
              file=sys.stderr)
        sys.exit(125)
    sys.exit(rv if isinstance(rv, int) else 0)


def _usage_error(exc: click.UsageError, message: str | None = None) -> None:
    name = exc.ctx.command_path if exc.ctx else "berth"
    print(message or f"Error: {exc.format_message()}", file=sys.stderr)
    print(f"See '{name} --help'.", file=sys.stderr)
    sys.exit(125)
