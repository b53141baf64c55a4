"""`run -t`: the container gets a terminal whose size follows the caller's."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from harness import BERTH


def read_all(fd: int, proc: subprocess.Popen, timeout: float = 30) -> bytes:
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    return out


def test_run_t_gives_a_terminal_of_the_callers_size(berth):
    image = berth.image
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
    proc = subprocess.Popen(BERTH + berth.args() + ["run", "--rm", "-t", "--network", "none", image,
                                                     "sh", "-c", "tty; stty size; exit 4"],
                            stdin=slave, stdout=slave, stderr=slave, env=berth.env, start_new_session=True)
    os.close(slave)
    try:
        out = read_all(master, proc)
        assert proc.wait(30) == 4
    finally:
        os.close(master)
    text = out.decode(errors="replace").replace("\r", "")
    assert "/dev/pts/" in text or "/dev/console" in text, text
    assert "31 97" in text, text


def test_run_t_without_a_terminal_still_runs(berth):
    proc = berth("run", "--rm", "-t", "--network", "none", berth.image, "sh", "-c", "test -t 1 && echo tty")
    assert proc.returncode == 0 and proc.stdout.replace("\r", "") == "tty\n"
