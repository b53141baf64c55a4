"""Lifecycle hooks as an installed plugin sees them, through real containers."""

from __future__ import annotations

import json
import os

from harness import install_plugin

RECORDER = """
    import json, os
    from berth.core.hookspecs import hookimpl

    def _note(what, container):
        with open(os.environ["BT_HOOK_LOG"], "a") as f:
            f.write(json.dumps([what, container.id, container.state]) + "\\n")

    @hookimpl
    def container_post_start(container):
        _note("post_start", container)

    @hookimpl
    def container_post_stop(container):
        _note("post_stop", container)
"""


def test_post_start_sees_the_pid_and_post_stop_the_stopped_state(berth, tmp_path):
    install_plugin(tmp_path / "site", "btrecorder", RECORDER)
    log = tmp_path / "hooks.jsonl"
    berth.env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + [p for p in [berth.env.get("PYTHONPATH")]
                                                                           if p]), BT_HOOK_LOG=str(log))
    cid = berth("run", "-d", "--network", "none", berth.image, "sh", "-c", "sleep 0.3; exit 3", check=True).stdout.strip()
    assert berth("wait", cid, check=True).stdout == "3\n"
    notes = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(what, c) for what, c, _ in notes] == [("post_start", cid), ("post_stop", cid)]
    started, stopped = notes[0][2], notes[1][2]
    assert started["Status"] == "running" and started["Pid"] > 0
    assert stopped["Status"] == "exited" and stopped["Running"] is False and stopped["ExitCode"] == 3
    assert stopped["Pid"] == 0 and stopped["FinishedAt"] != "0001-01-01T00:00:00Z"
