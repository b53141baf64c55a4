"""A running container's monitor in its steady state: small on purpose.

Once its container runs, the monitor (berth.core.containers.monitor) hands
off: it re-executes into ``python -S -I`` running this file, which imports
only C modules of the standard library and files loaded by their paths
alone: the container's stdio as the monitor serves it (stdio.py, which the
monitor runs too) and the log driver's writer (LogDriver.handoff). It is
still the container's parent (execve keeps the PID and the children), with
the same attach socket, and goes on doing what the monitor did: every
output line to the log, output to the attached clients and their input to
the container. When the container's process exits it drains the output
and re-executes into the full monitor (``monitor.resume``), which restarts
the process or records the exit and frees the container's resources as
before. When a health check's probe is due it hands everything back the
same way: the full monitor runs the probe, records its result, and hands
off again. A monitor that needs more than this (a log driver without a
handoff, a client attached at the time) stays as it is.

Started by Monitor._hand_off (`command`: BOOT loads this file by its cached
bytecode and calls main with the hand-off's JSON). berth imports it only for
`command` and `running`.
"""

import _json
import _signal
import _socket
import os
import select
import sys
import time

# Loads this file by its cached bytecode (a script would be compiled on each start), its package not imported.
BOOT = ("import sys; from _frozen_importlib import module_from_spec as m; "
        "from _frozen_importlib_external import spec_from_file_location as f; "
        "s = f('berth_steady', sys.argv[1]); d = m(s); s.loader.exec_module(d); d.main(sys.argv[1:])")
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


class Steady:
    def __init__(self, told):
        self.told = told
        stdio = self.stdio_module = load_file("berth_steady_stdio", told["stdio"])
        self.pid = told["pid"]
        self.exit_code = None
        self.probe_due = told["probe_due"]  # (time.monotonic) a health check's next probe, run by the full monitor
        self.listener = _socket.socket(fileno=told["listener"])
        self.writer = self.encode = None
        log = told["log"] or {}
        if log:
            encoder_file, function = log.pop("encoder")
            self.encode = getattr(load_file("berth_steady_encoder", encoder_file), function)
            self.writer = load_file("berth_steady_writer", log.pop("writer")).RotatingWriter(**log)
        self.poll = select.epoll()
        self.stdio = stdio.Stdio(lambda fd, _kind: self.poll.register(fd, select.EPOLLIN), self.unwatch,
                                 self.write_line if self.writer is not None else None, parse_json, told["stdin_once"])
        self.stdio.take(told)
        self.wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        for name in CAUGHT + ("SIGCHLD",):
            _signal.signal(getattr(_signal, name), _ignore)
        _signal.set_wakeup_fd(wake_w)
        self.poll.register(self.wake_r, select.EPOLLIN)
        self.poll.register(self.listener.fileno(), select.EPOLLIN)
        for fd in self.stdio.outputs:
            self.poll.register(fd, select.EPOLLIN)

    def unwatch(self, fd):
        try:
            self.poll.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def run(self):
        """Until the process has exited and its output is drained, or a probe is due."""
        stdio = self.stdio
        drain_deadline = None
        self.reap()
        while True:
            if self.exit_code is not None:
                if not stdio.outputs:
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
                    stdio.accept(self.listener)
                elif fd in stdio.outputs:
                    stdio.output_readable(fd)
                elif fd in stdio.clients:
                    stdio.client_readable(fd)

    def reap(self):
        if self.exit_code is None:
            self.exit_code = self.stdio_module.exit_code(self.pid)

    def write_line(self, stream, line):
        try:
            self.writer.write(self.encode(stream, line, time.time_ns()))
        except Exception as exc:  # a full disk must not kill the container
            print(f"log driver: {exc}", file=sys.stderr)

    def resume(self):
        """Back to the full monitor (monitor.resume): the process has exited (the last
        partial lines to the log first), or a health check is due (everything is handed back)."""
        stdio = self.stdio
        if self.exit_code is not None:
            stdio.close()
        if self.writer is not None:
            self.writer.close()
        clients = []
        for fd, client in stdio.clients.items():
            client.sock.detach()
            hello = "".join("1" if (client.hello or {}).get(k) else "0" for k in ("stdin", "stdout", "stderr"))
            clients.append([fd, hello, client.reader.buffer.decode("latin-1")])
        listener = self.listener.detach()
        keep = [listener, *stdio.clients, *stdio.outputs, stdio.master, stdio.stdin_w]
        for fd in keep:
            if fd is not None:
                os.set_inheritable(fd, True)
        back = {"exit_code": self.exit_code, "listener": listener, "clients": clients, **stdio.handed()}
        argv = self.told["resume"] + [dump_json(back)]
        os.execv(argv[0], argv)


def command(python: str, told: dict) -> list[str]:
    """The steady state's command line (the monitor's, run in the full interpreter)."""
    import json

    return [python, "-S", "-I", "-c", BOOT, __file__, json.dumps(told)]


def running(pid: int) -> bool:
    """Whether the process `pid` runs the steady state now (rm -f, berth.core.containers.container)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return len(args) > 5 and args[1:5] == [b"-S", b"-I", b"-c", BOOT.encode()]


def dump_json(value):
    """JSON of dicts, lists, text, whole numbers and None, without loading json (and re)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{dump_json(str(k))}: {dump_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump_json(v) for v in value) + "]"
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    return "null" if value is None else str(int(value))


def _ignore(*_):
    pass


def main(argv):
    steady = Steady(parse_json(argv[1]))
    steady.run()
    steady.resume()  # does not return


if __name__ == "__main__":
    main(sys.argv)
