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


AUDIT = """
    import json, os
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def event_emitted(event):
        with open(os.environ["BT_HOOK_LOG"], "a") as f:
            f.write(json.dumps(event) + "\\n")
"""


def _with_plugin(berth, tmp_path, name: str, source: str) -> None:
    install_plugin(tmp_path / "site", name, source)
    berth.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site")] + [p for p in [berth.env.get("PYTHONPATH")]
                                                                          if p])


def test_every_event_of_every_command_reaches_the_plugin(berth, tmp_path):
    """stop, kill and rm -f load no plugin of their own accord: the audit
    plugin still sees their events, and every event the journal has."""
    image = berth.image
    log = tmp_path / "events.jsonl"
    _with_plugin(berth, tmp_path, "btaudit", AUDIT)
    berth.env["BT_HOOK_LOG"] = str(log)
    first = berth("run", "-d", "--network", "none", image, "sleep", "60", check=True).stdout.strip()
    berth("stop", "-t", "1", first, check=True)
    second = berth("run", "-d", "--network", "none", image, "sleep", "60", check=True).stdout.strip()
    berth("kill", second, check=True)
    berth("rm", "-f", first, second, check=True)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    journal = [json.loads(line) for line in (berth.root / "events.jsonl").read_text().splitlines()]
    mine = [e for e in journal if e["Actor"]["ID"] in (first, second)]
    assert sorted(e["timeNano"] for e in seen if e["Actor"]["ID"] in (first, second)) == \
        sorted(e["timeNano"] for e in mine)
    actions = [(e["Actor"]["ID"], e["Action"]) for e in seen]
    for expected in [(first, "create"), (first, "start"), (first, "die"), (first, "stop"), (second, "kill"),
                     (second, "die"), (first, "destroy"), (second, "destroy")]:
        assert expected in actions


METRICS = """
    from berth.core.hookspecs import hookimpl

    class Thing:
        def collect(self):
            from prometheus_client.core import GaugeMetricFamily

            gauge = GaugeMetricFamily("btplug_things", "Things the test plugin holds")
            gauge.add_metric([], 42)
            yield gauge

    class Broken:
        def collect(self):
            raise RuntimeError("btplug collector is broken")

    @hookimpl
    def register_metrics(engine, register):
        register(Broken())
        register(Thing())
"""


def test_a_plugin_adds_collectors_to_the_metrics_and_a_broken_one_costs_only_itself(berth, tmp_path):
    _with_plugin(berth, tmp_path, "btmetrics", METRICS)
    shown = berth("metrics", "show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "btplug_things 42.0" in lines
    assert any(line.startswith("berth_images ") for line in lines)
    assert "btplug collector is broken" in shown.stderr
