"""Write docs/cli.md, the CLI reference, from click's own help texts.

    /work/venv/bin/python docs/gen_cli.py            # rewrites docs/cli.md
    /work/venv/bin/python docs/gen_cli.py -          # prints it instead

Walks berth.core.cli.main.COMMANDS in --help order, loading each command
the way `berth` does (lazily, through the group's get_command); a command
whose module does not exist yet is listed as "not yet available". Groups
(`volume`, `network` ...) get one section per subcommand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from berth.core.cli.main import COMMANDS, cli


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    # a fixed width: the output must not depend on the terminal that ran the script
    settings = {"terminal_width": 100, **(command.context_settings or {})}
    return click.Context(command, info_name=name, parent=parent, **settings)


def _help(command: click.Command, ctx: click.Context) -> str:
    return command.get_help(ctx).rstrip()


def _section(level: int, path: str, command: click.Command, ctx: click.Context) -> list[str]:
    out = [f"{'#' * level} `{path}`", "", "```text", _help(command, ctx), "```", ""]
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            subcommand = command.get_command(ctx, sub)
            if subcommand is None or subcommand.hidden:
                continue
            out += _section(level + 1, f"{path} {sub}", subcommand, _context(subcommand, sub, ctx))
    return out


def render() -> str:
    root = _context(cli, "berth", None)
    lines = [
        "# berth command-line reference",
        "",
        "Generated from the commands' own `--help` by `docs/gen_cli.py`; do not",
        "edit by hand. Every command also takes `-h`/`--help`. Errors end as one",
        "line on stderr and Docker's exit code (125 for a usage error).",
        "",
        "## `berth`",
        "",
        "```text",
        _help(cli, root),
        "```",
        "",
        "## Commands",
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    loaded: dict[str, click.Command | None] = {}
    errors: dict[str, str] = {}
    for name, (_, summary) in COMMANDS.items():
        try:
            loaded[name] = cli.get_command(root, name)
        except Exception as exc:  # a module that exists but is broken: say so, keep going
            loaded[name], errors[name] = None, f"{type(exc).__name__}: {exc}"
        note = "" if loaded[name] is not None else " *(not yet available)*"
        lines.append(f"| [`{name}`](#berth-{name}) | {summary}{note} |")
    lines.append("")
    for name, (_, summary) in COMMANDS.items():
        command = loaded[name]
        if command is None:
            lines += [f"## `berth {name}`", "", summary, "",
                      f"*Not yet available in this build{' (' + errors[name] + ')' if name in errors else ''}.*", ""]
            continue
        lines += _section(2, f"berth {name}", command, _context(command, name, root))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> None:
    text = render()
    if argv[1:] == ["-"]:
        sys.stdout.write(text)
    else:
        target = Path(__file__).resolve().parent / "cli.md"
        target.write_text(text)
        print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv)
