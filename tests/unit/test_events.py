import subprocess
import sys
import time

from berth.core.plumbing import events
from berth.core.plumbing.events import Journal, make_event


def test_event_has_dockers_shape():
    e = make_event("container", "die", "abc", {"exitCode": "3", "image": "busybox"})
    assert e["Type"] == "container" and e["Action"] == "die" and e["status"] == "die"
    assert e["Actor"] == {"ID": "abc", "Attributes": {"exitCode": "3", "image": "busybox"}}
    assert e["from"] == "busybox" and e["timeNano"] // 1_000_000_000 == e["time"]


def test_journal_past_and_window(tmp_path):
    j = Journal(tmp_path / "events.jsonl")
    first = make_event("image", "tag", "a")
    j.append(first)
    second = make_event("image", "untag", "a")
    j.append(second)
    assert [e["Action"] for e in j.read(since_ns=0)] == ["tag", "untag"]
    assert [e["Action"] for e in j.read(since_ns=second["timeNano"])] == ["untag"]
    assert [e["Action"] for e in j.read(since_ns=0, until_ns=first["timeNano"])] == ["tag"]


def test_follow_sees_another_process_and_survives_rotation(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    j = Journal(path)
    writer = (
        "import sys, time\n"
        "from berth.core.plumbing import events\n"
        "events.ROTATE_BYTES = 600\n"
        "j = events.Journal(sys.argv[1])\n"
        "time.sleep(0.3)\n"
        "for i in range(10):\n"
        "    j.append(events.make_event('container', f'a{i}', 'x'))\n"
        "    time.sleep(0.05)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(path)])
    try:
        got = []
        deadline = time.time() + 10
        for event in j.read(follow=True, until_ns=time.time_ns() + 8_000_000_000, poll=0.02):
            got.append(event["Action"])
            if len(got) == 10 or time.time() > deadline:
                break
        assert got == [f"a{i}" for i in range(10)]
        assert path.with_name("events.jsonl.1").exists()  # it did rotate
    finally:
        proc.wait(10)


def test_signals_reach_in_process_subscribers():
    seen = []

    def on_event(sender, event):
        seen.append(event["Action"])

    events.signal("volume").connect(on_event)
    try:
        events.signal("volume").send(None, event=make_event("volume", "create", "v"))
    finally:
        events.signal("volume").disconnect(on_event)
    assert seen == ["create"]


def test_following_since_shows_each_past_event_once(tmp_path):
    """`berth events --since 1h` (which follows): the past once, then what comes."""
    j = Journal(tmp_path / "events.jsonl")
    j.append(make_event("volume", "create", "v1"))
    j.append(make_event("volume", "destroy", "v1"))
    polls = []

    def stop():  # a new event at the second idle poll, the end at the fourth
        polls.append(1)
        if len(polls) == 2:
            j.append(make_event("volume", "create", "v2"))
        return len(polls) >= 4

    got = [(e["Action"], e["Actor"]["ID"]) for e in j.read(since_ns=0, follow=True, poll=0.01, stop=stop)]
    assert got == [("create", "v1"), ("destroy", "v1"), ("create", "v2")]


def test_metrics_count_each_event_once_across_rotations(tmp_path, monkeypatch):
    from berth.core.metrics import JournalCounter

    monkeypatch.setattr(events, "ROTATE_BYTES", 600)
    path = tmp_path / "events.jsonl"
    j = Journal(path)
    j.append(make_event("container", "start", "x"))
    counter = JournalCounter(path)
    assert counter.update()[("container", "start")] == 1
    for i in range(30):  # a rotation every few events, one at most between two scrapes
        j.append(make_event("container", "die", "x"))
        if i % 2:
            counter.update()
    assert path.with_name("events.jsonl.1").exists()  # it did rotate
    assert counter.update()[("container", "die")] == 30
    assert counter.update()[("container", "start")] == 1
