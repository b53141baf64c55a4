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
    assert c.parse_restart("no") == {"Name": "no", "MaximumRetryCount": 0}  # Docker 25+: "no", not ""
    assert c.parse_restart("") == {"Name": "no", "MaximumRetryCount": 0}
    assert c.parse_restart("on-failure:3") == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert c.parse_restart("on-failure") == {"Name": "on-failure", "MaximumRetryCount": 0}
    for bad, message in (
        ("sometimes", "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
                      "'on-failure', or 'unless-stopped'"),
        ("always:3", "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        ("on-failure:x", "invalid restart policy format: maximum retry count must be an integer"),
        ("on-failure:-1", "invalid restart policy: maximum retry count cannot be negative"),
        (":3", "invalid restart policy format: no policy provided before colon"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            c.parse_restart(bad)
        assert caught.value.message == message


def test_restart_backoff_is_dockers():
    """100 ms, doubled after each restart, at most a minute; back to 100 ms after 10 s of running."""
    from berth.core.containers.monitor import Restarts

    r = Restarts({"Name": "always", "MaximumRetryCount": 0})
    delays = [r.next_delay(1, {}) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0 and max(delays) == 60.0
    r.since -= 10  # the last process ran 10 s
    assert r.next_delay(0, {}) == 0.1
    assert r.next_delay(0, {"ExitOnNext": True}) is None  # stop, kill, rm -f


def test_restart_decisions_are_dockers():
    from berth.core.containers.monitor import Restarts

    def decide(policy, code, **state):
        return Restarts(c.parse_restart(policy)).next_delay(code, state) is not None

    assert not decide("no", 1)
    assert decide("always", 0) and decide("always", 1, ManuallyStopped=True)
    assert decide("unless-stopped", 0) and not decide("unless-stopped", 0, ManuallyStopped=True)
    assert not decide("on-failure", 0) and decide("on-failure", 1, RestartCount=50)
    assert decide("on-failure:2", 1, RestartCount=1) and not decide("on-failure:2", 1, RestartCount=2)
    assert not decide("always", 1, ExitOnNext=True)


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
