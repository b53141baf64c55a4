"""Attaching to a container: the client side of its monitor's attach socket.

Protocol (unix stream socket ``<runroot>/containers/<id>/attach.sock``): the
client sends one JSON line ``{"stdin": bool, "stdout": bool, "stderr":
bool}``, then frames; the monitor answers with frames. A frame is ``>BI``
(kind, length) + payload: STDIN data (client->monitor), STDOUT/STDERR data,
RESIZE ``>HH`` rows, cols, STDIN_EOF, EXIT (payload: the exit code in ASCII,
sent last). The monitor (berth.core.containers.monitor) is the server.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import socket
import struct

from berth.core.containers.stdio import (  # noqa: F401 - the protocol's pieces, public here too
    _TIOCGWINSZ,
    EXIT,
    RESIZE,
    STDERR,
    STDIN,
    STDIN_EOF,
    STDOUT,
    FrameReader,
    frame,
    set_window_size,
    short_path,
    write_all,
)


def connect(path: str) -> socket.socket:
    short, dir_fd = short_path(path)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(short)
        except OSError:
            sock.close()
            raise
        return sock
    finally:
        os.close(dir_fd)


class InputSelector:
    """selectors.DefaultSelector that also takes regular files and /dev/null.

    epoll refuses them (EPERM); poll(2) calls them always ready, and so does
    this: while one is registered, select() does not block and returns it.
    """

    def __init__(self):
        self._sel = selectors.DefaultSelector()
        self._always: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None) -> None:
        try:
            self._sel.register(fileobj, events, data)
        except PermissionError:
            fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
            self._always[fd] = selectors.SelectorKey(fileobj, fd, events, data)

    def unregister(self, fileobj) -> None:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if self._always.pop(fd, None) is None:
            self._sel.unregister(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = [(key, key.events) for key in self._always.values()]
        return self._sel.select(0 if ready else timeout) + ready

    def close(self) -> None:
        self._always.clear()
        self._sel.close()


def window_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, _TIOCGWINSZ, b"\0" * 8))
        return rows, cols
    except OSError:
        return None


def attach(path: str, *, stdin_fd: int | None, stdout_fd: int | None, stderr_fd: int | None,
           tty: bool = False, detach_keys: bytes | None = None, close_stdin: bool = True) -> int | None:
    """Attach this process's fds to a container; return its exit code.

    Returns None when the user detached (detach_keys, default ctrl-p ctrl-q
    with a tty) or the monitor went away without an exit code.
    stdin EOF is passed on (STDIN_EOF) when close_stdin.
    """
    sock = connect(path)
    hello = {"stdin": stdin_fd is not None, "stdout": stdout_fd is not None, "stderr": stderr_fd is not None}
    sock.sendall(json.dumps(hello).encode() + b"\n")
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    old_winch = None
    term = next((fd for fd in (stdin_fd, stdout_fd) if fd is not None and os.isatty(fd)), None)
    if tty and term is not None:  # the container's terminal follows ours
        size = window_size(term)
        if size:
            sock.sendall(frame(RESIZE, struct.pack(">HH", *size)))
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    sel = InputSelector()
    sel.register(sock, selectors.EVENT_READ, "sock")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    if stdin_fd is not None:
        sel.register(stdin_fd, selectors.EVENT_READ, "stdin")
    reader = FrameReader()
    pending_escape = b""
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "wake":
                    os.read(wake_r, 64)
                    size = window_size(term)
                    if size:
                        sock.sendall(frame(RESIZE, struct.pack(">HH", *size)))
                elif key.data == "stdin":
                    try:
                        data = os.read(stdin_fd, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(stdin_fd)
                        if close_stdin:
                            sock.sendall(frame(STDIN_EOF))
                        continue
                    if detach_keys:
                        data = pending_escape + data
                        pending_escape = b""
                        if detach_keys in data:
                            before = data[:data.index(detach_keys)]
                            if before:
                                sock.sendall(frame(STDIN, before))
                            return None
                        if data.endswith(detach_keys[:1]):
                            pending_escape, data = data[-1:], data[:-1]
                    if data:
                        sock.sendall(frame(STDIN, data))
                else:
                    try:
                        data = sock.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        return None
                    for kind, payload in reader.feed(data):
                        if kind == EXIT:
                            return int(payload or b"0")
                        fd = stdout_fd if kind == STDOUT else stderr_fd if kind == STDERR else None
                        if fd is not None:
                            write_all(fd, payload)
    finally:
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        sel.close()
        sock.close()
        os.close(wake_r)
        os.close(wake_w)

