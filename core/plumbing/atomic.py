"""Replace a small file in one step, so a concurrent reader sees the old
text or the new one, never an empty or half-written file; make a rename
in a directory durable."""

from __future__ import annotations

import os


def write_text(path: os.PathLike | str, text: str, mode: int | None = None) -> None:
    write_bytes(path, text.encode(), mode)


def write_bytes(path: os.PathLike | str, data: bytes, mode: int | None = None, durable: bool = False) -> None:
    """Replace file `path` with `data` (a temporary file renamed over it);
    `durable`: fsync the data first, so a crash leaves the old or the new."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def fsync_dir(path: os.PathLike | str) -> None:
    """Flush a directory's entries (a file renamed or linked into it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
