"""The command line's contract: exit codes, one-line errors, fast help."""

import subprocess
import sys

from berth.core.cli import render_help
from berth.core.cli._help import HELP

BERTH = [sys.executable, "-m", "berth.core.cli"]


def run(*args, **kw):
    return subprocess.run(BERTH + list(args), capture_output=True, text=True, **kw)


def test_prerendered_help_is_clicks_own():
    assert HELP == render_help(), (
        "core/cli/_help.py is stale: regenerate it with "
        "python -c 'from berth.core.cli import write_help_module as w; w(\"core/cli/_help.py\")'"
    )


def test_help_and_no_arguments_exit_zero():
    for args in ([], ["--help"], ["-h"]):
        proc = run(*args)
        assert proc.returncode == 0 and proc.stdout.startswith("Usage: berth")


def test_help_imports_nothing_heavy():
    code = ("import sys; sys.argv=['berth','--help']; from berth.core.cli import main\n"
            "try: main()\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('click','pyroute2','prometheus_client','structlog','sqlite3','requests') if m in sys.modules]\n"
            "print(heavy, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip() == "[]"


def test_unknown_flag_is_a_usage_error_125():
    proc = run("images", "--bogus")
    assert proc.returncode == 125
    assert proc.stderr.splitlines() == ["unknown flag: --bogus", "See 'berth images --help'."]
    assert "Traceback" not in proc.stderr


def test_unknown_command_125():
    proc = run("frobnicate")
    assert proc.returncode == 125 and "Traceback" not in proc.stderr


def test_bad_reference_one_line_125(tmp_path):
    proc = run("--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "s"), "tag", "x", "Bad:Ref")
    assert proc.returncode in (1, 125)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_unknown_storage_driver_one_line(tmp_path, rootfs_tar):
    proc = run("--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "s"), "-s", "nope",
               "import", str(rootfs_tar), "x")
    assert proc.returncode == 125
    assert proc.stderr.strip().startswith("Error: unknown storage driver 'nope'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_ps_and_images_import_nothing_heavy(tmp_path):
    for command in ("ps", "images"):
        code = (f"import sys; sys.argv=['berth','--root',{str(tmp_path / 'r')!r},'--runroot',{str(tmp_path / 's')!r},"
                f"{command!r}]\n"
                "from berth.core.cli.main import main\n"
                "try: main()\nexcept SystemExit: pass\n"
                "heavy=[m for m in ('pyroute2','prometheus_client','structlog','pluggy','importlib.metadata',"
                "'http.client','zstandard') if m in sys.modules]\n"
                "print(heavy, file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.stderr.strip().splitlines()[-1] == "[]", (command, proc.stderr)
