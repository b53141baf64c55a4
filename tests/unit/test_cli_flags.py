"""The click-free flag parser (berth.core.cli.flags) against click itself.

`run` and `create` parse their flags without click; anything the fast parser
does not take goes to click. These tests hold the two to the same results on
the command lines people type, and check that the fast path really is taken
(tests/integration/test_containers.py runs it without click) and really
hands the rest to click.
"""

import click
import click.testing
import pytest

from berth.core.cli import flags
from berth.core.cli.base import GLOBAL_FLAGS
from berth.core.cli.fast import IMAGES_FLAGS, IMPORT_FLAGS, INSPECT_FLAGS
from berth.core.cli.run import CREATE_FLAGS, RUN_CONTEXT, RUN_FLAGS


def click_command(table, seen=None):
    @click.command(context_settings=RUN_CONTEXT)
    @flags.click_options(table)
    @click.argument("image")
    @click.argument("command", nargs=-1, type=click.UNPROCESSED)
    def command(image, command, **values):
        seen.update(values=values, positionals=[image, *command])

    return command


def click_parse(table, args):
    """What click makes of `args` for a command with these flags."""
    seen = {}
    click_command(table, seen).main(args=list(args), standalone_mode=False)
    return seen["values"], seen["positionals"]


TYPED = [
    ["img"],
    ["--rm", "img", "true"],
    ["-it", "img", "sh"],
    ["-itd", "--name", "web", "img"],
    ["-d", "--name=web", "-e", "A=1", "-eB=2", "--env", "C=3", "--env=D=4", "img", "env"],
    ["-ie", "X=1", "img"],
    ["--rm", "--network", "none", "bench/busybox", "true"],
    ["--net=host", "-h", "box", "-w", "/tmp", "-u", "1000:1000", "img", "id"],
    ["--cpus", "1.5", "--pids-limit", "64", "-m", "64m", "--memory-swap=-1", "img"],
    ["--stop-timeout", "3", "--stop-signal", "SIGINT", "--restart", "on-failure:3", "img"],
    ["--no-sig-proxy", "img"],
    ["--sig-proxy", "--detach-keys", "ctrl-a,b", "img"],
    ["-p", "8080:80", "-p", "9090:90/udp", "-P", "--expose", "70", "img"],
    ["-v", "/a:/b:ro", "--mount", "type=tmpfs,dst=/t", "--tmpfs", "/run", "img"],
    ["-a", "STDOUT", "-a", "stderr", "img"],
    ["-l", "k=v", "--label", "x=y", "--log-driver", "none", "--log-opt", "max-size=1m", "img"],
    ["--pull", "never", "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "img"],
    ["--entrypoint", "", "img", "-c", "--rm", "--name", "x"],
    ["--", "img", "-d"],
    ["--add-host", "db:10.0.0.2", "--dns=1.1.1.1", "--dns-opt", "ndots:1", "--dns-option", "timeout:2",
     "--dns-search", "x.org", "--ulimit", "nofile=5:6", "-c", "512", "--privileged", "--init", "--pid", "host",
     "--ipc=container:a", "--uts", "host", "--userns", "host", "--cgroupns", "private", "img"],
    ["--device", "/dev/fuse", "--device-cgroup-rule", "c 1:3 rwm", "--security-opt", "no-new-privileges",
     "--group-add", "10", "--sysctl", "net.ipv4.ip_forward=1", "--oom-score-adj=-5", "--oom-kill-disable",
     "--cpuset-cpus", "0", "--memory-reservation", "8m", "--label-file", "l", "--volume-driver", "local",
     "--cidfile", "c", "--platform", "linux/amd64", "-q", "--ip", "10.0.0.9", "--network-alias", "web",
     "--net-alias", "www", "--mac-address", "02:42:ac:11:00:02", "img"],
    ["--name", "--rm", "img"],
    ["-", "x"],
]


@pytest.mark.parametrize("args", TYPED, ids=lambda a: " ".join(a) or "empty")
def test_fast_parser_agrees_with_click(args):
    values, positionals = flags.parse(RUN_FLAGS, args)
    assert (values, positionals) == click_parse(RUN_FLAGS, args)


@pytest.mark.parametrize("args", [
    ["--bogus", "img"], ["--name"], ["-e"], ["--cpus", "lots", "img"],
    ["--pids-limit", "1.5", "img"], ["--pull", "sometimes", "img"], ["--rm=true", "img"],
    ["-x", "img"], ["-dz", "img"], ["--oom-score-adj", "high", "img"], ["--cpu-shares", "1.5", "img"],
])
def test_fast_parser_leaves_the_rest_to_click(args):
    with pytest.raises(flags.Fallback):
        flags.parse(RUN_FLAGS, args)
    with pytest.raises((click.UsageError, click.exceptions.Exit)):
        click_parse(RUN_FLAGS, args)


def test_help_goes_to_click():
    with pytest.raises(flags.Fallback):
        flags.parse(RUN_FLAGS, ["--help", "img"])
    assert "Usage:" in click.testing.CliRunner().invoke(click_command(RUN_FLAGS), ["--help"]).output


def test_create_and_global_tables():
    assert flags.parse(CREATE_FLAGS, ["--name", "a", "img"])[0]["name"] == "a"
    with pytest.raises(flags.Fallback):
        flags.parse(CREATE_FLAGS, ["-d", "img"])  # run's flag, not create's
    values, rest = flags.parse(GLOBAL_FLAGS, ["--root", "/r", "-s", "vfs", "--log-format=json", "run", "--rm", "img"])
    assert values == {"root": "/r", "runroot": None, "storage_driver": "vfs", "log_level": None, "log_format": "json"}
    assert rest == ["run", "--rm", "img"]
    with pytest.raises(flags.Fallback):
        flags.parse(GLOBAL_FLAGS, ["--log-format", "xml", "run", "img"])


@pytest.mark.parametrize("args", [["c1"], ["-f", "{{.Id}}", "c1", "c2"], ["--format={{.Name}}", "-s", "c1"],
                                  ["--type", "image", "img"], ["-sf", "json", "c1"]])
def test_inspect_table_agrees_with_click(args):
    assert flags.parse(INSPECT_FLAGS, args) == click_parse(INSPECT_FLAGS, args)


@pytest.mark.parametrize("args", [["--type", "volume", "x"], ["--bogus", "x"], ["-f"]])
def test_inspect_leaves_the_rest_to_click(args):
    with pytest.raises(flags.Fallback):
        flags.parse(INSPECT_FLAGS, args)


@pytest.mark.parametrize("table, args", [
    (IMAGES_FLAGS, ["-a", "--digests", "-f", "dangling=true", "--filter=label=a", "--format", "{{.ID}}", "repo"]),
    (IMAGES_FLAGS, ["-qa", "--no-trunc", "busybox"]),
    (IMPORT_FLAGS, ["-m", "hello", "-c", "ENV A=1", "--change=CMD sh", "rootfs.tar", "me/img:1"]),
    (IMPORT_FLAGS, ["-", "x"]),
])
def test_images_and_import_tables_agree_with_click(table, args):
    assert flags.parse(table, args) == click_parse(table, args)
