"""Writing rotating log files: the half of berth.core.logfiles that a
container's monitor keeps in its light steady state
(berth.core.containers.steady), which loads this file alone. Imports
only os and errno, on purpose.

Rotation, as Docker's: at ``max_size`` the live file becomes ``.1``, ``.1``
becomes ``.2`` ... up to ``max_file - 1`` rotated files; with max_file=1 the
live file is unlinked and recreated (a follower still drains the old one).
"""

import errno
import os

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def seal_line(fd: int, size: int, complete: int) -> int:
    """End a torn newline-framed record with a newline (readers skip it); the new size."""
    return size + os.write(fd, b"\n")


class RotatingWriter:
    """Appends records (one os.write each) to `path`, rotating as above.
    `seal(fd, size, complete) -> size` mends a torn record after a short write."""

    def __init__(self, path: str, max_size: int, max_file: int, fd: int | None = None, size: int = 0,
                 seal=seal_line):
        self.path, self.max_size, self.max_file = path, max_size, max_file
        self.fd, self.size, self.seal = fd, size, seal

    def write(self, data: bytes) -> None:
        if self.fd is None:  # closed after a failed write: reopen, go on after what is there
            self.fd = os.open(self.path, _FLAGS, 0o640)
            self.size = os.fstat(self.fd).st_size
        if self.max_size > 0 and self.size >= self.max_size:
            self.rotate()
        before = self.size
        written = os.write(self.fd, data)
        self.size += written
        if written != len(data):  # disk full: seal the torn record so the next one parses
            try:
                self.size = self.seal(self.fd, self.size, before)
            except OSError:
                self.close()
            raise OSError(errno.ENOSPC, f"short write to {self.path}")

    def rotate(self) -> None:
        os.close(self.fd)
        self.fd = None
        if self.max_file < 2:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        else:
            for n in range(self.max_file - 1, 1, -1):
                try:
                    os.rename(f"{self.path}.{n - 1}", f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
            os.rename(self.path, f"{self.path}.1")
        self.fd = os.open(self.path, _FLAGS | os.O_TRUNC, 0o640)
        self.size = 0

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
