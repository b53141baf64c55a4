"""Flag tables: one declaration feeds both click and a click-free parser.

Importing click costs a command ~10 ms; `run` and `create` (the commands
people time) read their flags from these tables without it. `parse` handles
the command lines people type (`-it`, `-e X`, `-eX`, `--name x`,
`--name=x`, `--`, the first positional ending the flags) and raises
`Fallback` on anything else: `--help`, an unknown flag, a missing value, a
bad number. Then click parses the line itself and says what is wrong, so
there is one set of error messages. tests/unit/test_cli_flags.py holds the
two parsers to the same results.
"""

from __future__ import annotations


class Fallback(Exception):
    """This command line is for click to parse (and report)."""


class Flag:
    """One flag. kind: "value" (the last given wins), "multiple" (a tuple
    of every value), "bool" (present or not), "switch" (--x/--no-x)."""

    __slots__ = ("names", "dest", "help", "kind", "type", "default", "choices", "metavar", "hidden")

    def __init__(self, *names: str, dest: str | None = None, help: str = "", kind: str = "value",
                 type=None, default=None, choices: tuple[str, ...] | None = None,
                 metavar: str | None = None, hidden: bool = False):
        self.names = names
        self.dest = dest or max(names, key=len).lstrip("-").replace("-", "_")
        self.help, self.kind, self.type, self.choices = help, kind, type, choices
        self.metavar, self.hidden = metavar, hidden
        self.default = () if kind == "multiple" else False if kind == "bool" else default

    @property
    def takes_value(self) -> bool:
        return self.kind in ("value", "multiple")

    def spellings(self) -> list[str]:
        if self.kind == "switch":
            return [n for name in self.names for n in (name, "--no-" + name[2:])]
        return list(self.names)


def parse(flags: list[Flag], args: list[str]) -> tuple[dict, list[str]]:
    """(values by dest, positional arguments); flags end at the first positional."""
    by_name = {name: flag for flag in flags for name in flag.spellings()}
    values = {flag.dest: flag.default for flag in flags}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return values, args[i:]
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            flag = _known(by_name, name)
            if flag.kind == "switch":
                if eq:
                    raise Fallback(arg)
                values[flag.dest] = not name.startswith("--no-")
            elif flag.kind == "bool":
                if eq:
                    raise Fallback(arg)
                values[flag.dest] = True
            else:
                if not eq:
                    if i == len(args):
                        raise Fallback(arg)
                    value, i = args[i], i + 1
                _store(values, flag, value)
        elif arg.startswith("-") and arg != "-":
            for j in range(1, len(arg)):
                flag = _known(by_name, "-" + arg[j])
                if not flag.takes_value:
                    values[flag.dest] = True
                    continue
                value = arg[j + 1:]
                if not value:
                    if i == len(args):
                        raise Fallback(arg)
                    value, i = args[i], i + 1
                _store(values, flag, value)
                break
        else:
            return values, args[i - 1:]
    return values, []


def _known(by_name: dict, name: str) -> Flag:
    try:
        return by_name[name]
    except KeyError:
        raise Fallback(name) from None


def _store(values: dict, flag: Flag, value: str) -> None:
    if flag.choices is not None and value not in flag.choices:
        raise Fallback(value)
    if flag.type is not None:
        try:
            value = flag.type(value)
        except ValueError:
            raise Fallback(value) from None
    if flag.kind == "multiple":
        values[flag.dest] += (value,)
    else:
        values[flag.dest] = value


def click_options(flags: list[Flag]):
    """A decorator adding these flags to a click command, in table order."""
    import click

    decorators = []
    for flag in flags:
        kw = {"help": flag.help, "hidden": flag.hidden}
        if flag.metavar:
            kw["metavar"] = flag.metavar
        if flag.kind == "switch":
            names = [f"{name}/--no-{name[2:]}" for name in flag.names]
            kw["default"] = flag.default
        else:
            names = list(flag.names)
            if flag.kind == "bool":
                kw["is_flag"] = True
            elif flag.kind == "multiple":
                kw["multiple"] = True
            elif flag.default is not None:
                kw["default"] = flag.default
            if flag.choices is not None:
                kw["type"] = click.Choice(list(flag.choices))
            elif flag.type is not None:
                kw["type"] = flag.type
        decorators.append(click.option(*names, flag.dest, **kw))

    def decorate(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return decorate
