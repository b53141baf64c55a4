"""Dockerfiles as Docker's classic builder reads them.

`parse(text)` returns a `Dockerfile`: its parser directives (`escape`,
`syntax`) and its instructions, each with the text `Step N/M :` prints,
its flags and its arguments, still unexpanded. `Lexer` expands words as
Docker's shell lexer does: quotes, the escape character, `$VAR`, `${VAR}`,
`${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}` and
`${VAR:?message}`. Variables are expanded at build time, against the
environment the instruction sees, so the parser keeps words as written.

BuildKit-only syntax (heredocs, `RUN --mount/--network/--security`) is
refused with a "not supported" line rather than misread.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple

from berth.core.errors import BerthError


class DockerfileError(BerthError):
    """The Dockerfile cannot be built as written (Docker answers these with exit 1)."""


KNOWN = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
         "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")
# The flags each instruction takes (name -> takes a value); anything else is Docker's "Unknown flag".
FLAGS = {
    "FROM": {"platform": True},
    "COPY": {"from": True, "chown": True, "chmod": True},
    "ADD": {"chown": True, "chmod": True},
    "HEALTHCHECK": {"interval": True, "timeout": True, "start-period": True, "start-interval": True,
                    "retries": True},
}
BUILDKIT_FLAGS = {"RUN": ("mount", "network", "security"), "COPY": ("link", "parents", "exclude"),
                  "ADD": ("link", "keep-git-dir", "checksum", "exclude")}
# Instructions whose arguments the builder expands (Docker's replaceEnvAllowed); RUN, CMD,
# ENTRYPOINT and SHELL are left to the shell in the container.
EXPANDED = {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*[\"']?")
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*$")


class Instruction(namedtuple("Instruction", "cmd original line flags args json words pairs")):
    """One instruction. cmd: upper case (RUN); original: the text as written,
    continuations joined (what `Step N/M :` prints); flags: {name: value};
    args: the text after the flags; json: the exec (JSON array) form was
    used; words: its strings (the JSON array, or whitespace-separated words
    with their quotes); pairs: (key, value) for ENV, LABEL and ARG (value
    None for an ARG without a default), values with their quotes."""

    __slots__ = ()


class Stage(namedtuple("Stage", "index base name platform instructions from_")):
    """A FROM and what follows it: base as written (unexpanded), name (lower case) or None."""

    __slots__ = ()


class Dockerfile(namedtuple("Dockerfile", "escape syntax instructions")):
    __slots__ = ()

    def meta_args(self) -> list[Instruction]:
        """The ARGs before the first FROM."""
        out = []
        for inst in self.instructions:
            if inst.cmd == "FROM":
                break
            out.append(inst)
        return out

    def stages(self) -> list[Stage]:
        """The build stages; raises when an instruction other than ARG comes before the first FROM."""
        stages: list[Stage] = []
        for inst in self.instructions:
            if inst.cmd == "FROM":
                base, name = inst.words[0], None
                if len(inst.words) == 3:
                    name = inst.words[2].lower()
                stages.append(Stage(len(stages), base, name, inst.flags.get("platform"), [], inst))
            elif stages:
                stages[-1].instructions.append(inst)
            elif inst.cmd != "ARG":
                raise DockerfileError("No build stage in current context")
        if not stages:
            raise DockerfileError("No build stage in current context")
        return stages


def parse(text: str) -> Dockerfile:
    lines = text.splitlines()
    directives: dict[str, str] = {}
    start = 0
    while start < len(lines) and (m := _DIRECTIVE.match(lines[start])) and \
            m.group(1).lower() in ("escape", "syntax", "check"):
        key = m.group(1).lower()
        if key in directives:
            raise DockerfileError(f"only one {key} parser directive can be used")
        directives[key] = m.group(2)
        start += 1
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid ESCAPE '{escape}'. Must be ` or \\")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    instructions: list[Instruction] = []
    buffer, first_line = "", 0
    for number, raw in enumerate(lines[start:], start + 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and buffer):
            continue  # comments, and blank lines inside a continuation, are dropped
        if not stripped:
            continue
        if not buffer:
            first_line = number
            raw = raw.lstrip()
        m = continuation.search(raw)
        if m:
            buffer += raw[:m.start()]
            continue
        buffer += raw
        instructions.append(parse_instruction(buffer, first_line, escape))
        buffer = ""
    if buffer.strip():
        instructions.append(parse_instruction(buffer, first_line, escape))
    return Dockerfile(escape, directives.get("syntax"), instructions)


def parse_instruction(text: str, line: int, escape: str = "\\", onbuild: bool = False) -> Instruction:
    """One instruction's text (continuations already joined)."""
    text = text.strip()
    word, _, rest = text.partition(" ") if " " in text else text.partition("\t")
    cmd = word.upper()
    rest = rest.strip()
    if cmd not in KNOWN:
        raise DockerfileError(f"dockerfile parse error line {line}: unknown instruction: {word.upper()}")
    if "\x00" in text:
        raise DockerfileError(f"dockerfile parse error line {line}: NUL bytes are not allowed")
    flags, rest = _flags(cmd, rest, line)
    if cmd in ("RUN", "COPY", "ADD") and _HEREDOC.search(rest):
        raise DockerfileError(f"dockerfile parse error line {line}: heredocs ({cmd} <<EOF) are BuildKit syntax, "
                              "not supported by berth's classic builder")
    words: list[str] = []
    pairs: list[tuple[str, str | None]] = []
    is_json = False
    if cmd in ("RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"):
        parsed = _json_list(rest)
        if parsed is not None:
            words, is_json = parsed, True
        elif cmd == "SHELL":
            raise DockerfileError(f"dockerfile parse error line {line}: SHELL requires the arguments to be in "
                                  "JSON form")
        elif cmd in ("COPY", "ADD", "VOLUME"):
            words = split_words(rest, escape)
        else:
            words = [rest] if rest else []
    elif cmd in ("ENV", "LABEL"):
        pairs = _name_values(cmd, rest, escape, line)
    elif cmd == "ARG":
        pairs = _arg(rest, line)
    elif cmd == "ONBUILD":
        inner = rest.split(None, 1)[0].upper() if rest else ""
        if inner in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{inner} isn't allowed as an ONBUILD trigger")
        if not rest:
            raise DockerfileError("ONBUILD requires at least one argument")
        parse_instruction(rest, line, escape, onbuild=True)  # refused now if it would fail later
        words = [rest]
    elif cmd == "HEALTHCHECK":
        words = _healthcheck(rest, line)
    elif cmd in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"):
        words = [rest] if rest else []
    else:
        words = split_words(rest, escape)
    _check_count(cmd, words, pairs, rest, line)
    if cmd == "FROM":
        if len(words) == 3:
            if words[1].lower() != "as":
                raise DockerfileError(f"dockerfile parse error line {line}: FROM requires either one or three "
                                      "arguments")
            if not _NAME.match(words[2]):
                raise DockerfileError(f"invalid name for build stage: \"{words[2]}\", name can't start with a "
                                      "number or contain symbols")
        elif len(words) != 1:
            raise DockerfileError(f"dockerfile parse error line {line}: FROM requires either one or three arguments")
    return Instruction(cmd, text, line, flags, rest, is_json, words, pairs)


def _check_count(cmd: str, words: list, pairs: list, rest: str, line: int) -> None:
    if cmd in ("ENV", "LABEL", "ARG"):
        return
    if not words and cmd not in ("CMD", "ENTRYPOINT", "RUN") or (cmd in ("CMD", "ENTRYPOINT", "RUN") and not rest):
        what = {"COPY": "COPY requires at least two arguments", "ADD": "ADD requires at least two arguments"}
        raise DockerfileError(f"dockerfile parse error line {line}: "
                              + what.get(cmd, f"{cmd} requires at least one argument"))
    if cmd in ("COPY", "ADD") and len(words) < 2:
        raise DockerfileError(f"dockerfile parse error line {line}: {cmd} requires at least two arguments, but only "
                              f"one was provided. Destination could not be determined.")
    if cmd in ("STOPSIGNAL", "USER", "WORKDIR", "MAINTAINER") and not rest:
        raise DockerfileError(f"dockerfile parse error line {line}: {cmd} requires exactly one argument")


def _flags(cmd: str, rest: str, line: int) -> tuple[dict, str]:
    """Leading --name=value words (Docker's extractBuilderFlags)."""
    flags: dict[str, str] = {}
    allowed = FLAGS.get(cmd, {})
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            rest = after.lstrip()
            break
        name, sep, value = word[2:].partition("=")
        if name in BUILDKIT_FLAGS.get(cmd, ()):
            raise DockerfileError(f"dockerfile parse error line {line}: {cmd} --{name} is BuildKit syntax, "
                                  "not supported by berth's classic builder")
        if name not in allowed:
            raise DockerfileError(f"dockerfile parse error line {line}: Unknown flag: {name}")
        if name in flags:
            raise DockerfileError(f"Duplicate flag specified: {name}")
        if not sep:
            raise DockerfileError(f"Missing a value on flag: {name}")
        flags[name] = value
        rest = after.lstrip()
    return flags, rest


def _json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (Docker's parseWords)."""
    words: list[str] = []
    word, quote, escaped, in_word = "", "", False, False
    for ch in text:
        if escaped:
            word += ch
            escaped = False
            continue
        if not quote and ch.isspace():
            if in_word:
                words.append(word)
                word, in_word = "", False
            continue
        in_word = True
        if ch == escape:
            escaped = True
        elif quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        word += ch
    if in_word:
        words.append(word + (escape if escaped else ""))
    return words


def _name_values(cmd: str, rest: str, escape: str, line: int) -> list[tuple[str, str]]:
    words = split_words(rest, escape)
    if not words:
        raise DockerfileError(f"dockerfile parse error line {line}: {cmd} requires at least one argument")
    if "=" not in words[0]:  # the legacy `ENV KEY value with spaces`
        key, _, value = rest.partition(" ") if " " in rest else rest.partition("\t")
        if not value.strip():
            raise DockerfileError(f"dockerfile parse error line {line}: {cmd} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise DockerfileError(f"dockerfile parse error line {line}: Syntax error - can't find = in "
                                  f"\"{word}\". Must be of the form: name=value")
        if not key:
            raise DockerfileError(f"dockerfile parse error line {line}: {cmd} names can not be blank")
        pairs.append((key, value))
    return pairs


def _arg(rest: str, line: int) -> list[tuple[str, str | None]]:
    words = split_words(rest)
    if not words:
        raise DockerfileError(f"dockerfile parse error line {line}: ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if not key:
            raise DockerfileError(f"dockerfile parse error line {line}: ARG names can not be blank")
        pairs.append((key, value if sep else None))
    return pairs


def _healthcheck(rest: str, line: int) -> list[str]:
    kind, _, cmd = rest.partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if cmd.strip():
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return ["NONE"]
    if kind != "CMD":
        raise DockerfileError(f"dockerfile parse error line {line}: Unknown type \"{kind}\" in HEALTHCHECK "
                              "(try CMD)")
    cmd = cmd.strip()
    if not cmd:
        raise DockerfileError(f"dockerfile parse error line {line}: Missing command after HEALTHCHECK CMD")
    parsed = _json_list(cmd)
    return ["CMD"] + parsed if parsed is not None else ["CMD-SHELL", cmd]


# -- expansion ---------------------------------------------------------------------------


class Lexer:
    """Docker's shell lexer: quote removal, escapes and variable expansion.

    `env` maps names to values; a name not in it is unset (`${X-w}` gives w).
    """

    def __init__(self, escape: str = "\\"):
        self.escape = escape

    def word(self, text: str, env: dict[str, str]) -> str:
        """One word: quotes removed, variables expanded, never split."""
        return "".join(_Scan(text, env, self.escape).run(split=False))

    def words(self, text: str, env: dict[str, str]) -> list[str]:
        """Several words: split on unquoted whitespace after expansion (EXPOSE, VOLUME's plain form)."""
        return _Scan(text, env, self.escape).run(split=True)


class _Scan:
    def __init__(self, text: str, env: dict[str, str], escape: str):
        self.text, self.env, self.escape, self.pos = text, env, escape, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def run(self, split: bool, stop: str = "") -> list[str]:
        words: list[str] = []
        word, have = "", False
        while self.pos < len(self.text):
            ch = self.peek()
            if stop and ch in stop:
                break
            if split and ch.isspace():
                self.pos += 1
                if have:
                    words.append(word)
                    word, have = "", False
                continue
            have = True
            self.pos += 1
            if ch == self.escape:
                if self.pos < len(self.text):
                    word += self.next()
                else:
                    word += ch
            elif ch == "'":
                word += self._single()
            elif ch == '"':
                word += self._double()
            elif ch == "$":
                value = self._dollar()
                if not split:
                    word += value
                    continue
                for char in value:  # an unquoted expansion splits into words
                    if char.isspace():
                        if have and word:
                            words.append(word)
                        word, have = "", False
                    else:
                        word, have = word + char, True
            else:
                word += ch
        if have or not split:
            words.append(word)
        return words

    def _single(self) -> str:
        out = ""
        while True:
            ch = self.next()
            if ch == "":
                raise DockerfileError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return out
            out += ch

    def _double(self) -> str:
        out = ""
        while True:
            ch = self.next()
            if ch == "":
                raise DockerfileError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                return out
            if ch == self.escape and self.peek() in ('"', "$", self.escape):
                out += self.next()
            elif ch == "$":
                out += self._dollar()
            else:
                out += ch

    def _name(self) -> str:
        name = ""
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            name += self.next()
        return name

    def _dollar(self) -> str:
        ch = self.peek()
        if ch == "{":
            self.pos += 1
            return self._braced()
        if ch and (ch.isalpha() or ch == "_"):
            return self.env.get(self._name(), "")
        return "$"

    def _braced(self) -> str:
        name = self._name()
        if not name:
            raise DockerfileError(f"missing variable name in {self.text}")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in "-+?" or not ch:
            raise DockerfileError(f"unsupported modifier ({ch}) in substitution: {self.text}")
        word = "".join(self.run(split=False, stop="}"))
        if self.next() != "}":
            raise DockerfileError(f"syntax error: missing '}}' in {self.text}")
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word
        if ch == "+":
            return word if is_set else ""
        if not is_set:  # ?
            raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
        return value
