"""A running container's stdio as its monitor serves it (`Stdio`): the
container's output to the log and to the attached clients, their input to
the container; and the attach protocol's frames (its client:
berth.core.containers.attach).

Light on purpose: both the monitor and its steady state
(berth.core.containers.steady) run this code, and the steady state loads
this file alone, so it imports nothing but C modules of the standard
library.
"""

import _socket
import errno
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


MAX_LINE = 16 * 1024  # Docker splits log lines longer than 16K


def exit_code(pid: int) -> int | None:
    """The exit code of our child `pid` once it has exited (128+N for signal N, as Docker's),
    None while it runs; 255 when it is not our child (any more)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 255
    if not done:
        return None
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


class Client:
    """One attached client: its hello ({"stdin": bool, "stdout": bool, "stderr": bool}) once read."""

    def __init__(self, sock):
        self.sock, self.hello, self.buffer, self.reader = sock, None, b"", FrameReader()


class Stdio:
    """The output pipes (or the pty's master) of a container's process, the
    pipe to its stdin, and the clients on its attach socket. The owner polls:
    `watch(fd, kind)` and `unwatch(fd)` ("output" and "client" fds),
    `write_line(stream, line)` logs one line (None: no log), `parse_hello(bytes)`
    reads a client's first line (JSON), `stdin_once`: the first stdin client's
    end closes the container's stdin (--attach with -i, as Docker's)."""

    def __init__(self, watch, unwatch, write_line, parse_hello, stdin_once: bool):
        self.watch, self.unwatch, self.write_line = watch, unwatch, write_line
        self.parse_hello, self.stdin_once = parse_hello, stdin_once
        self.outputs: dict[int, str] = {}  # fd -> "stdout" | "stderr"
        self.master: int | None = None
        self.stdin_w: int | None = None
        self.clients: dict[int, Client] = {}
        self.partial = {"stdout": b"", "stderr": b""}  # the last line, until its newline comes
        self.on_hello = None  # called after a client's hello

    # -- between the monitor and its steady state (plain JSON values: bytes as latin-1 text)

    def handed(self) -> dict:
        """The pipes and the partial lines, for the other process (see take)."""
        return {"outputs": {str(fd): stream for fd, stream in self.outputs.items()}, "master": self.master,
                "stdin": self.stdin_w, "partial": {k: v.decode("latin-1") for k, v in self.partial.items()}}

    def take(self, handed: dict) -> None:
        """What handed() gave in the other process."""
        self.outputs = {int(fd): stream for fd, stream in handed["outputs"].items()}
        self.master, self.stdin_w = handed["master"], handed["stdin"]
        self.partial.update((k, v.encode("latin-1")) for k, v in handed["partial"].items())

    # -- the clients

    def accept(self, listener) -> None:
        try:
            fd, _ = listener._accept()
        except BlockingIOError:
            return
        sock = _socket.socket(fileno=fd)
        sock.setblocking(True)
        self.clients[fd] = Client(sock)
        self.watch(fd, "client")

    def adopt(self, fd: int, hello: dict | None, buffered: bytes = b"") -> None:
        """A client accepted by another process (the monitor and its steady state hand them over)."""
        client = self.clients[fd] = Client(_socket.socket(fileno=fd))
        client.hello, client.reader.buffer = hello, buffered
        self.watch(fd, "client")

    def drop(self, client: Client) -> None:
        fd = client.sock.fileno()
        if self.clients.pop(fd, None) is None:
            return  # dropped already: a send to it failed, then its EOF came in the same round
        self.unwatch(fd)
        client.sock.close()
        if client.hello and client.hello.get("stdin") and self.stdin_once:
            self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def client_readable(self, fd: int) -> None:
        client = self.clients.get(fd)
        if client is None:
            return  # dropped earlier in this round of events
        try:
            data = client.sock.recv(65536, _socket.MSG_DONTWAIT)  # the fd may be a newer client's by now
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        if client.hello is None:
            client.buffer += data
            if b"\n" not in client.buffer:
                return
            line, _, data = client.buffer.partition(b"\n")
            try:
                client.hello = self.parse_hello(line)
            except (ValueError, StopIteration):
                client.hello = None
            if not isinstance(client.hello, dict):
                client.hello = None
                self.drop(client)
                return
            if self.on_hello is not None:
                self.on_hello()
        for kind, payload in client.reader.feed(data):
            if kind == STDIN and client.hello.get("stdin"):
                target = self.master if self.master is not None else self.stdin_w
                if target is not None:
                    try:
                        write_all(target, payload)
                    except OSError:
                        pass
            elif kind == STDIN_EOF and client.hello.get("stdin"):
                if self.master is None:
                    self.close_stdin()
            elif kind == RESIZE and self.master is not None:
                size = resize_payload(payload)
                if size:
                    try:
                        set_window_size(self.master, *size)
                    except OSError:
                        pass

    def tell_clients(self, code: int) -> None:
        """Attached clients get the exit code and are let go (as Docker's attach ends)."""
        for fd, client in list(self.clients.items()):
            try:
                client.sock.sendall(frame(EXIT, str(code).encode()))
            except OSError:
                pass
            self.unwatch(fd)
            client.sock.close()
        self.clients.clear()

    # -- the output

    def output_readable(self, fd: int) -> None:
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the pty's last slave closed
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.unwatch(fd)
            del self.outputs[fd]
            if fd != self.master:
                os.close(fd)
            return
        message = frame(STDOUT if stream == "stdout" else STDERR, data)
        for client in list(self.clients.values()):
            if client.hello and client.hello.get(stream):
                try:
                    client.sock.sendall(message)
                except OSError:
                    self.drop(client)
        self.log(stream, data)

    def log(self, stream: str, data: bytes) -> None:
        """Whole lines to the log (at most MAX_LINE bytes each); the rest waits for its newline."""
        if self.write_line is None:
            return
        buf = self.partial[stream] + data
        while True:
            cut = buf.find(b"\n")
            if cut < 0 and len(buf) < MAX_LINE:
                break
            cut = MAX_LINE - 1 if cut < 0 or cut >= MAX_LINE else cut
            line, buf = buf[:cut + 1], buf[cut + 1:]
            self.write_line(stream, line)
        self.partial[stream] = buf

    def close(self) -> None:
        """The process exited: its last partial lines to the log, its descriptors closed."""
        if self.write_line is not None:
            for stream, rest in self.partial.items():
                if rest:
                    self.write_line(stream, rest)
        self.partial = {"stdout": b"", "stderr": b""}
        for fd in list(self.outputs):
            self.unwatch(fd)
            os.close(fd)
        self.outputs.clear()
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self.close_stdin()
