"""stdin that is a regular file or /dev/null (issue #11): epoll refuses such
fds (EPERM), which ended `berth run -i IMAGE sh < script.sh` in an internal
error. They are read to the end like a pipe."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness import BERTH


def run_with_stdin(berth, stdin_path: Path | str, *argv: str) -> subprocess.CompletedProcess:
    with open(stdin_path, "rb") as stdin:
        return subprocess.run(BERTH + berth.args() + list(argv), stdin=stdin, capture_output=True, text=True,
                              env=berth.env, timeout=60)


def test_run_i_reads_a_script_from_a_file(berth, tmp_path):
    script = tmp_path / "script.sh"
    # larger than one read (64 KiB), so the file is read in several pieces
    script.write_text("echo first\n" + "# padding\n" * 20000 + "echo last; exit 3\n")
    p = run_with_stdin(berth, script, "run", "--rm", "-i", "--network", "none", berth.image, "sh")
    assert (p.returncode, p.stdout, p.stderr) == (3, "first\nlast\n", "")


def test_run_attached_to_stdin_from_dev_null_sees_eof(berth):
    p = run_with_stdin(berth, "/dev/null", "run", "--rm", "-a", "stdin", "-a", "stdout", "-i", "--network", "none",
                       berth.image, "sh", "-c", "wc -c; echo done")
    assert (p.returncode, p.stdout.split(), p.stderr) == (0, ["0", "done"], "")


def test_start_ai_and_exec_i_read_a_file(berth, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("hello from a file\n")
    berth("create", "-i", "--name", "ai", "--network", "none", berth.image, "tr", "a-z", "A-Z", check=True)
    p = run_with_stdin(berth, data, "start", "-ai", "ai")
    assert (p.returncode, p.stdout, p.stderr) == (0, "HELLO FROM A FILE\n", "")
    berth("run", "-d", "--name", "ex", "--network", "none", berth.image, "sleep", "60", check=True)
    p = run_with_stdin(berth, data, "exec", "-i", "ex", "cat")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello from a file\n", "")
