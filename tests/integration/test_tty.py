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


def on_a_terminal(berth, argv: list[str], rows: int, cols: int) -> tuple[int, bytes]:
    """Run `berth ARGV` on a terminal of its own of that size: (exit code, what it printed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(BERTH + berth.args() + argv, stdin=slave, stdout=slave, stderr=slave, env=berth.env,
                            start_new_session=True)
    os.close(slave)
    try:
        out = read_all(master, proc)
        return proc.wait(30), out
    finally:
        os.close(master)


def test_run_t_gives_a_terminal_of_the_callers_size(berth):
    code, out = on_a_terminal(berth, ["run", "--rm", "-t", "--network", "none", berth.image,
                                      "sh", "-c", "tty; stty size; exit 4"], 31, 97)
    assert code == 4
    text = out.decode(errors="replace").replace("\r", "")
    assert "/dev/pts/" in text or "/dev/console" in text, text
    assert "31 97" in text, text


def test_run_t_without_a_terminal_still_runs(berth):
    proc = berth("run", "--rm", "-t", "--network", "none", berth.image, "sh", "-c", "test -t 1 && echo tty")
    assert proc.returncode == 0 and proc.stdout.replace("\r", "") == "tty\n"


def test_ctrl_p_ctrl_q_detaches_and_the_container_keeps_running(berth):
    cid = berth("run", "-d", "-i", "-t", "--network", "none", berth.image, "sh", check=True).stdout.strip()
    master, slave = pty.openpty()
    proc = subprocess.Popen(BERTH + berth.args() + ["attach", cid], stdin=slave, stdout=slave, stderr=slave,
                            env=berth.env, start_new_session=True)
    os.close(slave)
    try:
        time.sleep(1.0)
        os.write(master, b"echo attached-$((40+2))\r")
        deadline, seen = time.time() + 10, b""
        while b"attached-42" not in seen and time.time() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 4096)
        assert b"attached-42" in seen  # the shell answered through the attach
        os.write(master, b"\x10\x11")  # ctrl-p ctrl-q
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    state = berth("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip()
    assert state == "running"
    berth("rm", "-f", cid, check=True)


def test_exec_t_gets_a_terminal(berth):
    cid = berth("run", "-d", "--network", "none", berth.image, "sleep", "60", check=True).stdout.strip()
    code, out = on_a_terminal(berth, ["exec", "-t", cid, "sh", "-c", "test -t 0 && echo tty-ok; exit 6"], 33, 91)
    assert code == 6
    assert b"tty-ok" in out
    berth("rm", "-f", cid, check=True)
