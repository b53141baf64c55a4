"""`run --rm` that fails after the container was created removes it (issue #11)."""

from __future__ import annotations

import os

from harness import install_plugin

REFUSER = """
    from berth.core.errors import FailedPrecondition
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def container_pre_start(container):
        raise FailedPrecondition("refused by policy")
"""


def test_a_start_refused_by_a_hook_removes_the_rm_container(berth, tmp_path):
    berth.image
    install_plugin(tmp_path / "site", "btrefuser", REFUSER)
    berth.env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + [p for p in [berth.env.get("PYTHONPATH")]
                                                                           if p]))
    for detach in ([], ["-d"]):
        proc = berth("run", *detach, "--rm", "--network", "none", berth.image, "true")
        assert proc.returncode != 0 and "refused by policy" in proc.stderr, proc.stderr
        assert berth("ps", "-aq").stdout == "", detach
    # without --rm the container stays, Created, as in Docker
    proc = berth("run", "--network", "none", "--name", "kept", berth.image, "true")
    assert proc.returncode == 125 and "refused by policy" in proc.stderr
    assert berth("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout == "kept created\n"


def test_an_unknown_user_removes_the_rm_container(berth):
    for detach in ([], ["-d"]):
        proc = berth("run", *detach, "--rm", "--network", "none", "--user", "nosuchuser", berth.image, "true")
        assert proc.returncode == 125 and "unable to find user nosuchuser" in proc.stderr, proc.stderr
        assert berth("ps", "-aq").stdout == ""
