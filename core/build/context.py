"""The build context: the files COPY and ADD may read, and the Dockerfile.

A context is a directory (`berth build DIR`: read in place, never copied),
a tar stream (`berth build - < ctx.tar`, the Engine API's POST /build:
extracted once into a private temporary directory with the layer
extractor's rules: no `..`, no absolute names, nothing lands outside), or
nothing but a Dockerfile (`berth build - < Dockerfile`). `.dockerignore`
at its root leaves files out of COPY and ADD.

Sources are looked up inside the context root: `../x` is refused, a
symlinked parent is resolved inside the root, and a symlink that is the
source itself is copied as a link, never followed.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path

from berth.core.build.ignore import Matcher
from berth.core.build.parser import DockerfileError
from berth.core.build.scratch import Scratch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

TAR_MAGIC_OFFSET = 257


class SourceError(DockerfileError):
    """A COPY or ADD source that is not in the context (the caller names the instruction)."""

COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


def looks_like_archive(head: bytes) -> bool:
    """A tar (plain or compressed) rather than a Dockerfile."""
    return head.startswith(COMPRESSED) or head[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar"


class Context:
    """root: the context directory; dockerfile: its text; ignore: the .dockerignore matcher."""

    def __init__(self, root: Path, dockerfile: str, ignore: Matcher, scratch: Scratch | None = None):
        self.root = Path(os.path.realpath(root))
        self.dockerfile = dockerfile
        self.ignore = ignore
        self.scratch = scratch  # the directory is the build's own: removed on close
        self._walked: dict[str, str] = {}  # host paths walk() found (no link on the way: none to resolve)

    # -- making one -------------------------------------------------------------------

    @classmethod
    def from_directory(cls, path: str, dockerfile: str | None = None, dockerfile_text: str | None = None) -> "Context":
        """`dockerfile`: its path, relative to the working directory (default DIR/Dockerfile);
        `dockerfile_text`: its content, when it came on stdin (`-f -`)."""
        root = Path(path)
        if not root.is_dir():
            raise DockerfileError(f"unable to prepare context: path \"{path}\" not found")
        if dockerfile_text is None:
            dockerfile_text = _read_dockerfile(Path(dockerfile) if dockerfile else root / "Dockerfile", dockerfile)
        return cls(root, dockerfile_text, _ignore_of(root))

    @classmethod
    def from_text(cls, text: str, scratch: Path) -> "Context":
        """Only a Dockerfile (`berth build - < Dockerfile`): an empty context."""
        own = Scratch(scratch)
        return cls(Path(own.path), text, Matcher([]), own)

    @classmethod
    def from_stream(cls, stream: BinaryIO, scratch: Path, dockerfile: str | None = None) -> "Context":
        """`berth build -`: a context archive, or else a Dockerfile alone, on `stream`."""
        head = _read_up_to(stream, 512)
        rest = _Chained(head, stream)
        if looks_like_archive(head):
            return cls.from_tar(rest, scratch, dockerfile or "Dockerfile")
        return cls.from_text(rest.read().decode("utf-8", "replace"), scratch)

    @classmethod
    def from_tar(cls, stream: BinaryIO, scratch: Path, dockerfile: str = "Dockerfile") -> "Context":
        """A context archive (plain, gzip, bzip2, xz or zstd), extracted under `scratch`;
        `dockerfile` names the Dockerfile inside it."""
        import bz2
        import lzma

        from berth.core.errors import Corrupt
        from berth.core.oci.archive import decompressed, extract_layer

        head = _read_up_to(stream, 6)
        stream = _Chained(head, stream)
        if head.startswith(b"BZh"):
            stream = bz2.BZ2File(stream)
        elif head.startswith(b"\xfd7zXZ"):
            stream = lzma.LZMAFile(stream)
        own = Scratch(scratch)
        directory = Path(own.path)
        try:
            try:
                extract_layer(decompressed(stream), directory, "delete")
            except (Corrupt, OSError, EOFError, lzma.LZMAError) as exc:
                raise DockerfileError(f"error processing tar file: {exc}") from None
            name = posixpath.normpath("/" + dockerfile).lstrip("/")
            text = _read_dockerfile(Path(_inside(directory, name)), dockerfile)
            return cls(directory, text, _ignore_of(directory), own)
        except BaseException:
            own.close()
            raise

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def host_path(self, rel: str) -> str:
        """The host path of context path `rel`: parents resolved inside the root, the last kept as is."""
        known = self._walked.get(rel)
        return known if known is not None else _inside(self.root, rel)

    def clean(self, source: str) -> str:
        """A COPY source as a context path; `../x` is refused."""
        cleaned = posixpath.normpath(source)
        if cleaned == ".." or cleaned.startswith("../"):
            raise SourceError(f"forbidden path outside the build context: {source} ()")
        return posixpath.normpath(cleaned.lstrip("/")) if cleaned.lstrip("/") else "."

    def glob(self, pattern: str) -> list[str]:
        """Context paths (not ignored) matching a COPY source with wildcards, sorted."""
        import fnmatch
        import re

        rel = self.clean(pattern)
        regex = re.compile("^" + "/".join(fnmatch.translate(part)[4:-3] for part in rel.split("/")) + "$")
        depth = rel.count("/") + 1
        found = []
        for path in self.walk(".", max_depth=depth):
            if path.count("/") + 1 == depth and regex.match(path):
                found.append(path)
        return sorted(found)

    def walk(self, rel: str, max_depth: int | None = None):
        """Context paths under directory `rel` (not itself), not ignored, parents first, in name
        order. Iterative: a context thousands of directories deep is walked, not a RecursionError."""
        base = self.host_path(rel) if rel != "." else str(self.root)
        prefix = "" if rel == "." else rel.rstrip("/") + "/"
        stack = [(base, prefix, 1)]
        while stack:
            directory, prefix, depth = stack.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError:
                continue
            below = []
            for entry in entries:
                path = prefix + entry.name
                descend = entry.is_dir(follow_symlinks=False) and (max_depth is None or depth < max_depth)
                if self.ignore.excluded(path):
                    if descend and self.ignore.may_include_below(path):
                        below.append((entry.path, path + "/", depth + 1))
                    continue
                self._walked[path] = entry.path
                yield path
                if descend:
                    below.append((entry.path, path + "/", depth + 1))
            stack.extend(reversed(below))

    def lstat(self, rel: str) -> os.stat_result:
        """stat of a source; missing or ignored is Docker's error."""
        if rel != "." and self.ignore.excluded(rel):
            raise SourceError(f"file not found in build context or excluded by .dockerignore: stat {rel}: "
                                  "file does not exist")
        try:
            return os.lstat(self.host_path(rel))
        except OSError:
            raise SourceError(f"file not found in build context or excluded by .dockerignore: stat {rel}: "
                                  "file does not exist") from None

    def is_dir(self, rel: str) -> bool:
        return stat.S_ISDIR(self.lstat(rel).st_mode)


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    head = b""
    while len(head) < size:
        more = stream.read(size - len(head))
        if not more:
            break
        head += more
    return head


class _Chained:
    """`head`, then the rest of `stream` (what was read to tell a tar from a Dockerfile)."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0:
                data, self.head = self.head + self.stream.read(), b""
                return data
            data, self.head = self.head[:size], self.head[size:]
            return data
        return self.stream.read(size)

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _inside(root, rel: str) -> str:
    from berth.core.runtime.paths import resolve_in_root

    clean = posixpath.normpath("/" + rel)
    if clean == "/":
        return str(root)
    parent = resolve_in_root(str(root), posixpath.dirname(clean))
    return os.path.join(parent, posixpath.basename(clean))


def _ignore_of(root: Path) -> Matcher:
    try:
        return Matcher.parse((root / ".dockerignore").read_text())
    except FileNotFoundError:
        return Matcher([])
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerfileError(f"error reading .dockerignore: {exc}") from None


def _read_dockerfile(path: Path, given: str | None) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        name = given or str(path)
        raise DockerfileError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                              f"lstat {os.path.abspath(name)}: no such file or directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DockerfileError(f"error reading Dockerfile: {exc}") from None
