"""How every command prints: tables, --format templates, inspect JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable


def table(rows: list[dict], columns: list[tuple[str, str]], fmt: str | None = None) -> None:
    """Print `rows` (dicts of template fields) as Docker does.

    `columns` is the default view: (field, title) pairs. `fmt` is the
    user's --format: `table ...`, a Go template, or `json`.
    """
    from berth.core.cli import template

    headers = {field: title for field, title in columns}
    if fmt:
        out = template.format_rows(fmt, rows, headers)
    else:
        out = template.columns([[title for _, title in columns]] + [[str(r[f]) for f, _ in columns] for r in rows])
    sys.stdout.write(out if not out or out.endswith("\n") else out + "\n")


def inspect(objects: Iterable[dict], fmt: str | None = None) -> None:
    """`inspect`: a JSON array indented by 4, or one rendered template per object."""
    objects = list(objects)
    if fmt:
        from berth.core.cli import template

        for obj in objects:
            sys.stdout.write(template.render(fmt, obj) + "\n")
    else:
        sys.stdout.write(json.dumps(objects, indent=4) + "\n")


def inspect_each(names, lookup, fmt: str | None = None) -> None:
    """Inspect every name that `lookup` finds; then report the missing ones
    as Docker does (all printed, the last one raised for the exit code)."""
    import click

    from berth.core.errors import NotFound

    found, missing = [], []
    for name in names:
        try:
            found.append(lookup(name))
        except NotFound as exc:
            missing.append(str(exc))
    inspect(found, fmt)
    if missing:
        for m in missing[:-1]:
            click.echo(f"Error: {m}", err=True)
        raise NotFound(missing[-1])


def each(names, action) -> None:
    """Apply `action` to every argument; print each failure, exit 1 if any failed (Docker's rm, rmi ...)."""
    import click

    from berth.core.errors import BerthError

    failed = False
    for name in names:
        try:
            action(name)
        except BerthError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = True
    if failed:
        raise BerthError("")

