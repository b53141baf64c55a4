"""Content-addressable blobs under ``<root>/blobs/sha256/<hex>``.

A blob is written to a temporary file in the same directory, hashed as it
streams, verified against the digest the caller expects, fsynced and only
then given its name: a crash never leaves a half blob under a real name.
The temporary file is anonymous (O_TMPFILE), so a crash leaves nothing;
where the filesystem cannot, it is a .tmp-* file that `clean_temporary`
removes.
"""

from __future__ import annotations

# shutil (it loads bz2 and lzma) is imported where used: a container start needs none of it.
import os
from pathlib import Path

from berth.core.errors import Corrupt, NotFound
from berth.core.oci.reference import DIGEST_RE
from berth.core.plumbing import atomic

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 1 << 20


# For a few bytes (an ID, a config): CPython's own sha256, since loading
# OpenSSL for hashlib costs ~2 ms, more than hashing them. Blobs go through
# hashlib (HashingWriter), which is faster on long input.
try:
    from _sha256 import sha256 as _small_sha256  # Python 3.11
except ImportError:
    try:
        from _sha2 import sha256 as _small_sha256  # 3.12 and later
    except ImportError:
        from hashlib import sha256 as _small_sha256


def sha256_bytes(data: bytes) -> str:
    """"sha256:<hex>" of a few bytes."""
    return "sha256:" + _small_sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """Refuse anything but ``sha256:`` and 64 lower-case hex digits (no ``../``)."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise Corrupt(f"invalid digest {digest!r}")
    return digest


class HashingWriter:
    """A file-like sink that hashes and counts what passes through it."""

    def __init__(self, f: BinaryIO):
        import hashlib

        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.f.write(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _copy(stream: BinaryIO, sink: HashingWriter, limit: int | None) -> None:
    """Copy `stream` into `sink`, refusing more than `limit` bytes the moment they arrive."""
    while True:
        data = stream.read(CHUNK if limit is None else min(CHUNK, limit - sink.size + 1))
        if not data:
            return
        if limit is not None and sink.size + len(data) > limit:
            raise Corrupt(f"more than the declared {limit} bytes")
        sink.write(data)


class ContentStore:
    def __init__(self, root: Path):
        self.dir = Path(root) / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / check_digest(digest).split(":", 1)[1]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the content store") from None

    def read(self, digest: str) -> bytes:
        """A small blob (a config, a manifest), checked against its digest:
        a blob damaged on disk raises Corrupt naming it, never reaches a parser."""
        with self.open(digest) as f:
            data = f.read()
        actual = sha256_bytes(data)
        if actual != digest:
            raise Corrupt(f"blob {digest} in the content store is damaged (its content is {actual}): "
                          "remove the image and pull or load it again")
        return data

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        import io

        return self.put(io.BytesIO(data), expected)[0]

    def put(self, stream: BinaryIO, expected: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        """Store what `stream` yields; return (digest, size).

        With `expected`, a mismatch raises Corrupt and nothing is stored.
        With `expected_size`, reading stops as soon as the stream yields one
        byte more (a hostile source may never end): Corrupt, nothing stored.
        """
        if expected is not None:
            check_digest(expected)
            if self.exists(expected):
                return expected, self.size(expected)
        fd, tmp_name = _temporary(self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                sink = HashingWriter(f)
                _copy(stream, sink, expected_size)
                f.flush()
                os.fsync(f.fileno())
                digest, size = sink.digest, sink.size
                if expected is not None and digest != expected:
                    raise Corrupt(f"digest mismatch: expected {expected}, got {digest}")
                if expected_size is not None and size != expected_size:
                    raise Corrupt(f"size mismatch for {digest}: expected {expected_size} bytes, got {size}")
                if tmp_name is None:  # give the anonymous file its name
                    _link_anonymous(f.fileno(), self.dir, self.path(digest).name)
            if tmp_name is not None:
                os.rename(tmp_name, self.path(digest))
            atomic.fsync_dir(self.dir)
            return digest, size
        except BaseException:
            if tmp_name is not None:
                _unlink(tmp_name)
            raise

    def delete(self, digest: str) -> None:
        _unlink(self.path(digest))

    def digests(self) -> list[str]:
        return ["sha256:" + p.name for p in self.dir.iterdir() if not p.name.startswith(".tmp-")]

    def clean_temporary(self, older_than: float = 600.0) -> int:
        """Remove temporary files a killed writer left; return how many.

        Only files untouched for `older_than` seconds: a live writer in
        another process keeps its file's mtime fresh.
        """
        import time

        n = 0
        for p in self.dir.glob(".tmp-*"):
            try:
                if time.time() - p.stat().st_mtime >= older_than:
                    _unlink(str(p))
                    n += 1
            except FileNotFoundError:
                pass
        return n


def _temporary(directory: Path) -> tuple[int, str | None]:
    """A file to write a blob into: anonymous (O_TMPFILE) where the
    filesystem allows, so that a writer killed even by SIGKILL leaves
    nothing behind; else a named .tmp-* file (clean_temporary's)."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600), None
    except OSError:
        import tempfile

        return tempfile.mkstemp(prefix=".tmp-", dir=directory)


def _link_anonymous(fd: int, directory: Path, name: str) -> None:
    """linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/FD: os.link takes that
    path only with a directory descriptor (else it calls plain link(2),
    which refuses the magic link)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=True)
    except FileExistsError:
        pass  # another writer stored the same content meanwhile
    finally:
        os.close(dir_fd)


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
