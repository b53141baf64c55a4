"""core/plumbing/forked.py: work in a forked child, errors carried back by class."""

from __future__ import annotations

import os

import pytest

from berth.core.errors import BerthError, Conflict
from berth.core.plumbing.forked import Forked


def test_prepare_runs_before_the_argument_and_work_returns_its_result(tmp_path):
    marker = tmp_path / "prepared"
    forked = Forked(lambda: marker.write_text(str(os.getpid())),
                    lambda arg: {"sum": arg["a"] + arg["b"], "pid": os.getpid()})
    result = forked.send({"a": 2, "b": 3})
    assert result["sum"] == 5
    assert result["pid"] != os.getpid()  # it ran in the child
    assert marker.read_text() == str(result["pid"])  # and prepare ran in that same child


def test_a_berth_error_comes_back_as_its_own_class():
    def work(_):
        raise Conflict("port is already allocated")

    with pytest.raises(Conflict, match="^port is already allocated$"):
        Forked(lambda: None, work).send()


def test_any_other_error_comes_back_as_a_berth_error_naming_it():
    def work(_):
        raise OSError(28, "No space left on device")

    with pytest.raises(BerthError, match="OSError: .*No space left on device"):
        Forked(lambda: None, work).send()


def test_a_child_that_dies_is_reported():
    with pytest.raises(BerthError, match="the forked worker died"):
        Forked(lambda: os._exit(3), lambda _: None).send()


def test_cancel_reaps_the_child_without_running_work(tmp_path):
    ran = tmp_path / "ran"
    forked = Forked(lambda: None, lambda _: ran.write_text("yes"))
    pid = forked._pid
    forked.cancel()
    assert not ran.exists()
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left
        os.waitpid(pid, os.WNOHANG)
    forked.cancel()  # a second cancel is a no-op
