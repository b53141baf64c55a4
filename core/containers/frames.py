"""The attach protocol's frames (berth.core.containers.attach has the whole protocol).

Light on purpose: the monitor's steady state (berth.core.containers.steady)
loads this file alone, so it imports nothing but C modules of the standard
library.
"""

import fcntl
import os
import time
from _struct import Struct

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_EOF = range(6)
_HEADER = Struct(">BI")
_WINDOW = Struct("HHHH")
# termios's values, without loading termios (a container start does not need it)
_TIOCGWINSZ = 0x5413
_TIOCSWINSZ = 0x5414


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Split a byte stream into (kind, payload) frames."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        out = []
        while len(self.buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < _HEADER.size + length:
                break
            out.append((kind, self.buffer[_HEADER.size:_HEADER.size + length]))
            self.buffer = self.buffer[_HEADER.size + length:]
        return out


def short_path(path: str) -> tuple[str, int]:
    """A unix socket path under 108 bytes: /proc/self/fd/N/<name> on an O_PATH dir fd."""
    dir_fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}", dir_fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        view = view[n:]


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Give the terminal `fd` a size (the container's follows its client's)."""
    fcntl.ioctl(fd, _TIOCSWINSZ, _WINDOW.pack(rows, cols, 0, 0))


def resize_payload(payload: bytes) -> tuple[int, int] | None:
    """A RESIZE frame's (rows, cols), None if it is not one."""
    return _RESIZE.unpack(payload) if len(payload) == _RESIZE.size else None


_RESIZE = Struct(">HH")
