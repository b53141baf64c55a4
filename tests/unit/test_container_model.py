"""The container model's pure parts: names, env merging, signals, restart policies, attach frames."""

import signal

import pytest

from berth.core.containers import attach
from berth.core.containers import container as c
from berth.core.errors import InvalidArgument


def test_names_follow_dockers_grammar():
    assert c.check_name("web-1.a_b") == "web-1.a_b"
    assert c.check_name("/web") == "web"
    for bad in ("a", "-x", "has space", "x/y", ""):
        with pytest.raises(InvalidArgument, match=r"Invalid container name"):
            c.check_name(bad)
    for _ in range(50):
        name = c.random_name()
        assert c.NAME_RE.match(name) and "_" in name


def test_env_merge_user_wins_and_bare_keys_come_from_the_host(monkeypatch):
    monkeypatch.setenv("BT_FROM_HOST", "h")
    monkeypatch.delenv("BT_MISSING", raising=False)
    env = c.merge_env(["PATH=/bin", "A=1"], ["A=2", "B=", "BT_FROM_HOST", "BT_MISSING"])
    assert env == ["PATH=/bin", "A=2", "B=", "BT_FROM_HOST=h"]
    with pytest.raises(InvalidArgument):
        c.merge_env([], ["=x"])


def test_env_file(tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\n\nA=1\n  B=two words\n")
    assert c.parse_env_file(str(f)) == ["A=1", "B=two words"]
    with pytest.raises(InvalidArgument):
        c.parse_env_file(str(tmp_path / "missing"))


def test_signal_names_and_numbers():
    assert c.signal_number("TERM") == signal.SIGTERM
    assert c.signal_number("SIGKILL") == signal.SIGKILL
    assert c.signal_number("usr1") == signal.SIGUSR1
    assert c.signal_number("9") == 9
    assert c.signal_number(None) == signal.SIGTERM
    for bad in ("NOPE", "0", "99"):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            c.signal_number(bad)


def test_restart_policies():
    assert c.parse_restart("no") == {"Name": "", "MaximumRetryCount": 0}
    assert c.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(InvalidArgument):
            c.parse_restart(bad)


def test_conflict_message_is_dockers():
    assert str(c.name_conflict("x", "abc")) == (
        'Conflict. The container name "/x" is already in use by container "abc". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def test_liveness_checks_the_start_time():
    import os

    me = os.getpid()
    start = c.proc_start(me)
    assert c.alive(me, start)
    assert not c.alive(me, start + 1)  # a reused PID is not the same process
    assert not c.alive(0, start)


def test_attach_frames_split_across_reads():
    data = attach.frame(attach.STDOUT, b"hello") + attach.frame(attach.EXIT, b"3")
    reader = attach.FrameReader()
    got = []
    for i in range(len(data)):
        got += reader.feed(data[i:i + 1])
    assert got == [(attach.STDOUT, b"hello"), (attach.EXIT, b"3")]
