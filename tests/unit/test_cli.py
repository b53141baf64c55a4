"""The command line's contract: exit codes, one-line errors, fast help."""

import subprocess
import sys

from berth.core.cli import _GLOBAL_VALUES, render_help, render_helps
from berth.core.cli._help import GROUPS, HELP, HELPS
from berth.core.cli.base import GLOBAL_FLAGS

BERTH = [sys.executable, "-m", "berth.core.cli"]


def run(*args, **kw):
    return subprocess.run(BERTH + list(args), capture_output=True, text=True, **kw)


def test_prerendered_help_is_clicks_own():
    assert HELP == render_help(), (
        "core/cli/_help.py is stale: regenerate it with "
        "python -c 'from berth.core.cli import write_help_module as w; w(\"core/cli/_help.py\")'"
    )


def test_prerendered_help_of_every_command_is_clicks_own():
    helps, groups = render_helps()
    stale = sorted(set(helps.items()) ^ set(HELPS.items()))
    assert not stale and GROUPS == frozenset(groups), (
        f"core/cli/_help.py is stale ({stale[0][0] if stale else 'groups'!r}): regenerate it with "
        "python -c 'from berth.core.cli import write_help_module as w; w(\"core/cli/_help.py\")'"
    )


def test_prerendered_help_knows_the_global_flags_that_take_a_value():
    assert set(_GLOBAL_VALUES) == {n for f in GLOBAL_FLAGS if f.takes_value or f.choices for n in f.names}


def test_help_after_global_flags_is_the_same_and_imports_nothing_heavy(tmp_path):
    for args in (["--root", str(tmp_path), "--runroot", str(tmp_path), "--help"],
                 [f"--root={tmp_path}", "-s", "vfs", "-h"]):
        code = (f"import sys; sys.argv=['berth', *{args!r}]; from berth.core.cli import main\n"
                "try: main()\nexcept SystemExit: pass\n"
                "print([m for m in ('click','sqlite3') if m in sys.modules], file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.stdout == HELP and proc.stderr.strip() == "[]", args


def test_a_commands_help_is_its_own_however_the_line_is_written(tmp_path):
    proc = run("--root", str(tmp_path), "image", "ls", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: berth image ls [OPTIONS]")
    assert "--filter" in proc.stdout
    proc = run("volume", "create", "-h")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: berth volume create")


def test_a_bare_group_prints_its_help_and_exits_zero(tmp_path):
    for group in ("volume", "network", "container", "image", "system"):
        proc = run("--root", str(tmp_path), group)
        assert (proc.returncode, proc.stderr) == (0, ""), group
        assert proc.stdout.startswith(f"Usage: berth {group} [OPTIONS] COMMAND") and "Commands:" in proc.stdout
    # through click too (the fast path is not what decides)
    code = "from berth.core.cli.main import main; main(['volume'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: berth volume")


def test_a_containers_own_help_flag_is_not_berths(tmp_path):
    from berth.core.cli import _prerendered_help

    assert _prerendered_help(["run", "alpine", "--help"]) is None
    assert _prerendered_help(["exec", "c1", "ls", "-h"]) is None
    assert _prerendered_help(["ps"]) is None
    assert _prerendered_help(["--bogus", "--help"]) is None
    assert _prerendered_help(["run", "--help"]) == HELPS["run"]


def test_dash_v_prints_the_version():
    for flag in ("-v", "--version"):
        proc = run(flag)
        assert proc.returncode == 0 and proc.stdout.startswith("berth version "), flag


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
