"""Commands parsed without click (importing click costs a command ~10 ms):
`run` and `create` (berth.core.cli.run), and `inspect`, which tools call
once per container. `fast()` takes the command lines people type; anything
else (--help, a flag it does not know, a bad value) falls back to click,
which has the one set of error messages (berth.core.cli.flags)."""

from __future__ import annotations

from berth.core.cli.base import GLOBAL_FLAGS, make_engine, overrides, reported
from berth.core.cli.flags import Fallback, Flag, parse
from berth.core.errors import BerthError, InvalidArgument, NotFound

INSPECT_FLAGS = [
    Flag("-f", "--format", dest="fmt", help="Format output using a Go template."),
    Flag("-s", "--size", kind="bool", help="Display total file sizes if the type is container."),
    Flag("--type", dest="type_", choices=("container", "image"), help="Return JSON for specified type."),
]


def fast(argv: list[str]) -> int | None:
    """Run `berth [GLOBAL FLAGS] COMMAND ...` without click; None when click must parse it."""
    try:
        global_values, rest = parse(GLOBAL_FLAGS, argv)
        if not rest:
            return None
        if rest[0] in ("run", "create"):
            from berth.core.cli import run

            return run.fast(global_values, rest)
        if rest[0] != "inspect":
            return None
        values, names = parse(INSPECT_FLAGS, rest[1:])
    except Fallback:
        return None
    if not names or any(name.startswith("-") for name in names):
        return None  # click says what is missing, or takes flags after the names
    layer = overrides(global_values)
    return reported(lambda: inspect_objects(make_engine(layer), names, values["fmt"], values["type_"]))


def inspect_objects(engine, names, fmt: str | None, type_: str | None) -> int:
    """`berth inspect`: containers, then images, by each name; Docker's error for the rest."""
    import sys

    from berth.core.cli import output

    found, errors = [], []
    for name in names:
        obj = None
        if type_ in (None, "container"):
            try:
                obj = engine.containers.inspect(engine.containers.get(name))
            except NotFound:
                pass
        if obj is None and type_ in (None, "image"):
            try:
                obj = engine.images.inspect(engine.images.get(name))
            except (NotFound, InvalidArgument):
                pass
        if obj is None:
            errors.append(f"No such object: {name}")
        else:
            found.append(obj)
    output.inspect(found, fmt)
    if errors:
        for message in errors:
            print(f"Error: {message}", file=sys.stderr)
        raise BerthError("")
    return 0
