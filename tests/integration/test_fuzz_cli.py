"""Random arguments for every berth command (issue #11): whatever hypothesis throws at
them, no command ends in `internal error` or a traceback. Each command family gets a few
seconds (a handful of examples; each runs the real CLI in a network namespace of its own,
so no random reference reaches a real registry, against the test's own installation)."""

from __future__ import annotations

import os
import subprocess

import click
import pytest
from harness import BERTH
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.core.cli.main import cli

# Commands that serve or stream until stopped: their argument errors are covered by the
# families' other commands sharing the same flag parser.
ENDLESS = {("events",), ("system", "events"), ("system", "service"), ("metrics", "serve"), ("system", "dial-stdio"), ("stats",),
           ("container", "stats")}

SPECIAL = ["-", "--", "", ":", "a:b", "x:99999", "localhost:99999/x", "sha256:", "sha256:" + "0" * 64, "0", "-1",
           "99999999999", "9" * 40, "1e309", "nan", "-5s", "1m", "a=b", "=", "k=", "--format", "{{", "{{.}}",
           "{{printf \"%9999999d\" 1}}", "table {{.ID}}", "json", "type=bind,src=x,dst=/y", "127.0.0.1:80:80",
           "10.0.0.0/33", "ALL", "host", "none", "bridge", "container:x", "on-failure:-3", "\u00e9", "a" * 300]


def commands(group: click.Group, ctx: click.Context, path=()):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, ctx, path + (name,))
        elif path + (name,) not in ENDLESS:
            yield path + (name,), command


with click.Context(cli) as _ctx:
    COMMANDS = dict(commands(cli, _ctx))
def _family(path) -> str:
    if len(path) > 1:
        return path[0]
    top = {"run", "create", "start", "stop", "restart", "kill", "pause", "unpause", "rm", "rename", "ps", "wait",
           "attach", "exec", "top", "logs", "diff", "commit", "cp", "port"}
    if path[0] in top:
        return "container"
    if path[0] in {"images", "import", "load", "save", "tag", "rmi", "history", "build"}:
        return "image"
    if path[0] in {"pull", "push", "login", "logout", "search"}:
        return "registry"
    return "other"


def arguments(command: click.Command):
    flags = sorted(o for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts)
    token = st.one_of(
        st.sampled_from(flags) if flags else st.sampled_from(SPECIAL),
        st.sampled_from(SPECIAL),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
        st.integers(-(2 ** 70), 2 ** 70).map(str),
    )
    return st.lists(token, max_size=6)


def example(family: str):
    paths = sorted(p for p in COMMANDS if _family(p) == family)
    return st.sampled_from(paths).flatmap(lambda p: st.tuples(st.just(p), arguments(COMMANDS[p])))


@pytest.mark.parametrize("family", sorted({_family(p) for p in COMMANDS}))
def test_random_arguments_never_end_in_an_internal_error(berth, tmp_path, family):
    config = tmp_path / "fuzz.toml"
    config.write_text(berth.config.read_text() + '\n[registries]\ndefault = "127.0.0.1:9"\n')
    env = dict(berth.env, BERTH_CONFIG=str(config))
    work = tmp_path / "work"
    work.mkdir()

    @settings(max_examples=int(os.environ.get("BERTH_FUZZ_EXAMPLES", "8")), deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(example(family))
    def check(case):
        path, args = case
        argv = ["unshare", "-n", *BERTH, *berth.args(), *path, *args]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                               cwd=work, timeout=60, errors="replace")
        except subprocess.TimeoutExpired:
            pytest.fail(f"berth {' '.join(path + tuple(args))!r} did not finish in 60 s")
        assert "internal error" not in p.stderr and "Traceback" not in p.stderr + p.stdout, \
            f"berth {[*path, *args]!r}:\n{p.stderr}"

    check()
