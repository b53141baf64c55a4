""".dockerignore: Docker's pattern rules (moby/patternmatcher).

One pattern a line; `#` starts a comment line; a pattern is cleaned as a
path (`./a/../b` is `b`, a leading `/` is dropped). `*` and `?` match within
one path component, `**` any number of components, `[...]` a class, the
escape `\\` the next character. A pattern that matches a directory excludes
everything under it. `!` re-includes what an earlier pattern excluded; the
last pattern that matches a path decides.
"""

from __future__ import annotations

import posixpath
import re


class Pattern:
    __slots__ = ("text", "exclusion", "regex", "depth")

    def __init__(self, text: str):
        self.exclusion = text.startswith("!")
        text = text[1:].strip() if self.exclusion else text
        text = posixpath.normpath(text.lstrip("/")) if text.lstrip("/") else "."
        self.text = text
        self.depth = len(text.split("/"))
        self.regex = re.compile(_regex(text))

    def matches(self, path: str) -> bool:
        if self.regex.match(path):
            return True
        parts = path.split("/")
        # a pattern that matches one of the path's parent directories matches the path
        if len(parts) > 1 and self.depth < len(parts):
            return bool(self.regex.match("/".join(parts[:self.depth])))
        return False


def _regex(pattern: str) -> str:
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":  # **/ : zero or more directories
                    i += 1
                    out += "(.*/)?"
                elif i + 1 == len(pattern):  # a trailing **: anything
                    out += ".*"
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return out + "$"


class Matcher:
    """The patterns of one .dockerignore."""

    def __init__(self, patterns: list[str]):
        self.patterns = [Pattern(p) for p in patterns]
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        lines = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
        return cls(lines)

    def excluded(self, path: str) -> bool:
        """Whether the context path `path` (relative, with /) is left out."""
        path = posixpath.normpath(path)
        result = False
        for pattern in self.patterns:
            if pattern.exclusion == result and pattern.matches(path):
                result = not pattern.exclusion
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether an exclusion could bring back something under an excluded `directory`."""
        if not self.has_exclusions:
            return False
        prefix = directory.rstrip("/") + "/"
        for pattern in self.patterns:
            if pattern.exclusion and (pattern.text.startswith(prefix) or "*" in pattern.text
                                      or pattern.text.split("/")[0] == directory.split("/")[0]):
                return True
        return False
