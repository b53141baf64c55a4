"""A running container's monitor in its steady state: small on purpose.

Once its container runs, the monitor (berth.core.containers.monitor) hands
off: it re-executes into ``python -S -I`` running this file, which imports
only C modules of the standard library and two files loaded by their paths
(the attach protocol's frames and the log driver's writer: see
LogDriver.handoff). It is still the container's parent (execve keeps the
PID and the children), with the same attach socket, and goes on doing what
the monitor did: every output line to the log, output to the attached
clients and their input to the container. When the container's process
exits it drains the output and re-executes into the full monitor
(``monitor.resume``), which restarts the process or records the exit and
frees the container's resources as before. When a health check's probe is
due it hands everything back the same way: the full monitor runs the probe,
records its result, and hands off again. A monitor that needs more than
this (a log driver without a handoff, a client attached at the time) stays
as it is.

Run as ``python -S -I steady.py HANDOFF``, HANDOFF the JSON that
Monitor._hand_off writes. Not imported by berth.
"""

import _json
import _signal
import _socket
import os
import select
import sys
import time

MAX_LINE = 16 * 1024  # as the monitor's: Docker splits log lines longer than 16K
CAUGHT = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGUSR1", "SIGUSR2")


class _JsonContext:  # what _json's scanner reads from json.JSONDecoder, without loading json (and re)
    strict, object_hook, object_pairs_hook, parse_constant, memo = True, None, None, None, {}
    parse_float, parse_int = float, int


_scan = _json.make_scanner(_JsonContext())


def parse_json(text):
    return _scan(text.decode() if isinstance(text, bytes) else text, 0)[0]


def load_file(name, path):
    """The module in `path`, loaded by its path alone (its package is not imported)."""
    from _frozen_importlib import module_from_spec
    from _frozen_importlib_external import spec_from_file_location

    spec = spec_from_file_location(name, path)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client:
    def __init__(self, sock, frames):
        self.sock, self.hello, self.buffer, self.reader = sock, None, b"", frames.FrameReader()


class Steady:
    def __init__(self, told):
        self.told = told
        self.frames = load_file("berth_steady_frames", told["frames"])
        self.pid = told["pid"]
        self.outputs = {int(fd): stream for fd, stream in told["outputs"].items()}
        self.master, self.stdin_w, self.stdin_once = told["master"], told["stdin"], told["stdin_once"]
        self.partial = {stream: text.encode("latin-1") for stream, text in told["partial"].items()}
        self.listener = _socket.socket(fileno=told["listener"])
        self.clients = {}
        self.exit_code = None
        self.probe_due = told["probe_due"]  # (time.monotonic) a health check's next probe, run by the full monitor
        self.writer = self.encode = None
        log = told["log"] or {}
        if log:
            encoder_file, function = log.pop("encoder")
            self.encode = getattr(load_file("berth_steady_encoder", encoder_file), function)
            writer = load_file("berth_steady_writer", log.pop("writer"))
            self.writer = writer.RotatingWriter(**log)
        self.poll = select.epoll()
        self.wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        for name in CAUGHT + ("SIGCHLD",):
            _signal.signal(getattr(_signal, name), _ignore)
        _signal.set_wakeup_fd(wake_w)
        self.poll.register(self.wake_r, select.EPOLLIN)
        self.poll.register(self.listener.fileno(), select.EPOLLIN)
        for fd in self.outputs:
            self.poll.register(fd, select.EPOLLIN)

    def run(self):
        """Until the process has exited and its output is drained, or a probe is due."""
        drain_deadline = None
        self.reap()
        while True:
            if self.exit_code is not None:
                if not self.outputs:
                    break
                drain_deadline = drain_deadline or time.monotonic() + 2
                if time.monotonic() > drain_deadline:
                    break
                timeout = 0.1
            elif self.probe_due is not None:
                timeout = self.probe_due - time.monotonic()
                if timeout <= 0:
                    break
            else:
                timeout = -1
            for fd, _ in self.poll.poll(timeout):
                if fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
                elif fd == self.listener.fileno():
                    self.accept()
                elif fd in self.outputs:
                    self.output_readable(fd)
                elif fd in self.clients:
                    self.client_readable(fd)

    def reap(self):
        if self.exit_code is not None:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.exit_code = 255
            return
        if pid:
            code = os.waitstatus_to_exitcode(status)
            self.exit_code = code if code >= 0 else 128 - code

    # -- the attached clients --------------------------------------------------------

    def accept(self):
        try:
            fd, _ = self.listener._accept()
        except BlockingIOError:
            return
        sock = _socket.socket(fileno=fd)
        sock.setblocking(True)
        self.clients[fd] = Client(sock, self.frames)
        self.poll.register(fd, select.EPOLLIN)

    def drop(self, fd):
        client = self.clients.pop(fd, None)
        if client is None:
            return
        self.poll.unregister(fd)
        client.sock.close()
        if client.hello and client.hello.get("stdin") and self.stdin_once:
            self.close_stdin()

    def close_stdin(self):
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def client_readable(self, fd):
        f = self.frames
        client = self.clients[fd]
        try:
            data = client.sock.recv(65536, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        if client.hello is None:
            client.buffer += data
            if b"\n" not in client.buffer:
                return
            line, _, data = client.buffer.partition(b"\n")
            try:
                client.hello = parse_json(line)
            except (ValueError, StopIteration):
                client.hello = None
            if not isinstance(client.hello, dict):
                self.drop(fd)
                return
        for kind, payload in client.reader.feed(data):
            if kind == f.STDIN and client.hello.get("stdin"):
                target = self.master if self.master is not None else self.stdin_w
                if target is not None:
                    try:
                        f.write_all(target, payload)
                    except OSError:
                        pass
            elif kind == f.STDIN_EOF and client.hello.get("stdin"):
                if self.master is None:
                    self.close_stdin()
            elif kind == f.RESIZE and self.master is not None:
                size = f.resize_payload(payload)
                if size:
                    try:
                        f.set_window_size(self.master, *size)
                    except OSError:
                        pass

    # -- the container's output ------------------------------------------------------

    def output_readable(self, fd):
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self.poll.unregister(fd)
            del self.outputs[fd]
            if fd != self.master:
                os.close(fd)
            return
        message = self.frames.frame(self.frames.STDOUT if stream == "stdout" else self.frames.STDERR, data)
        for cfd, client in list(self.clients.items()):
            if client.hello and client.hello.get(stream):
                try:
                    client.sock.sendall(message)
                except OSError:
                    self.drop(cfd)
        self.log(stream, data)

    def log(self, stream, data):
        if self.writer is None:
            return
        buf = self.partial.get(stream, b"") + data
        now = time.time_ns()
        while True:
            cut = buf.find(b"\n")
            if cut < 0 and len(buf) < MAX_LINE:
                break
            cut = MAX_LINE - 1 if cut < 0 or cut >= MAX_LINE else cut
            line, buf = buf[:cut + 1], buf[cut + 1:]
            self.write_log(stream, line, now)
        self.partial[stream] = buf

    def write_log(self, stream, line, now):
        try:
            self.writer.write(self.encode(stream, line, now))
        except Exception as exc:  # a full disk must not kill the container
            print(f"log driver: {exc}", file=sys.stderr)

    # -- the end ---------------------------------------------------------------------

    def resume(self):
        """Back to the full monitor (monitor.resume): the process has exited (the last
        partial lines to the log first), or a health check is due (everything is handed back)."""
        if self.writer is not None:
            if self.exit_code is not None:
                now = time.time_ns()
                for stream, rest in self.partial.items():
                    if rest:
                        self.write_log(stream, rest, now)
                self.partial = {}
            self.writer.close()
        if self.exit_code is not None:
            for fd in self.outputs:
                os.close(fd)
            self.outputs = {}
            if self.master is not None:
                os.close(self.master)
                self.master = None
            self.close_stdin()
        clients = []
        for fd, client in self.clients.items():
            client.sock.detach()
            hello = "".join("1" if (client.hello or {}).get(k) else "0" for k in ("stdin", "stdout", "stderr"))
            clients.append(f"[{fd}, {_text(hello)}, {_text(client.reader.buffer)}]")
        listener = self.listener.detach()
        keep = [listener, *self.clients, *self.outputs, self.master, self.stdin_w]
        for fd in keep:
            if fd is not None:
                os.set_inheritable(fd, True)
        told = (f'{{"exit_code": {_number(self.exit_code)}, "listener": {listener}, "clients": [{", ".join(clients)}], '
                f'"outputs": {{{", ".join(f"{_text(str(fd))}: {_text(s)}" for fd, s in self.outputs.items())}}}, '
                f'"master": {_number(self.master)}, "stdin": {_number(self.stdin_w)}, '
                f'"partial": {{{", ".join(f"{_text(k)}: {_text(v)}" for k, v in self.partial.items())}}}}}')
        argv = self.told["resume"] + [told]
        os.execv(argv[0], argv)


def _text(value):
    """A JSON string (bytes as latin-1), without loading json."""
    return _json.encode_basestring_ascii(value.decode("latin-1") if isinstance(value, bytes) else value)


def _number(value):
    return "null" if value is None else str(int(value))


def _ignore(*_):
    pass


def main(argv):
    steady = Steady(parse_json(argv[1]))
    steady.run()
    steady.resume()  # does not return


if __name__ == "__main__":
    main(sys.argv)
