"""Health check configuration as Docker builds it: flags, the merge with the image's, the probe."""

from __future__ import annotations

import pytest

from berth.core.containers import health
from berth.core.errors import InvalidArgument


def flags(**kw):
    base = {"health_cmd": None, "health_interval": None, "health_retries": None, "health_start_interval": None,
            "health_start_period": None, "health_timeout": None, "no_healthcheck": False}
    base.update(kw)
    return base


def test_flags_make_dockers_healthconfig():
    assert health.from_flags(flags()) is None
    assert health.from_flags(flags(no_healthcheck=True)) == {"Test": ["NONE"]}
    assert health.from_flags(flags(health_cmd="curl -f localhost", health_interval="1m30s", health_retries=4)) == {
        "Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 90 * 10**9, "Retries": 4}
    assert health.from_flags(flags(health_timeout="500ms")) == {"Timeout": 500 * 10**6}  # the image's test stays


@pytest.mark.parametrize("kw, message", [
    ({"no_healthcheck": True, "health_retries": 1}, "--no-healthcheck conflicts with --health-* options"),
    ({"health_start_period": "-1s"}, "--health-start-period cannot be negative"),
    ({"health_interval": "10ns"}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"health_timeout": "1"}, 'invalid argument "1" for "--health-timeout" flag: time: invalid duration "1"'),
])
def test_bad_flags(kw, message):
    with pytest.raises(InvalidArgument) as caught:
        health.from_flags(flags(**kw))
    assert caught.value.message == message


def test_merge_takes_what_the_user_left_unset_from_the_image():
    image = {"Test": ["CMD", "check"], "Interval": 5, "Retries": 2}
    assert health.merge(None, image) == image
    assert health.merge({"Timeout": 7}, image) == {"Test": ["CMD", "check"], "Interval": 5, "Retries": 2, "Timeout": 7}
    assert health.merge({"Test": ["NONE"]}, None) == {"Test": ["NONE"]}
    assert health.merge(None, None) is None


def test_probe_args():
    assert health.probe_args({"Test": ["CMD-SHELL", "exit 1"]}) == ["/bin/sh", "-c", "exit 1"]
    assert health.probe_args({"Test": ["CMD", "/bin/check", "-v"]}) == ["/bin/check", "-v"]
    for none in ({"Test": ["NONE"]}, {"Test": []}, {}, None, {"Interval": 5}):
        assert health.probe_args(none) is None
    assert health.status_of({}) == "none" and health.status_of({"Health": {"Status": "healthy"}}) == "healthy"


def test_the_api_s_healthconfig_is_checked_as_docker_s_daemon_checks_it():
    assert health.validate({"Test": ["CMD", "true"], "Interval": 2 * 10**9, "Retries": 0}) == {
        "Test": ["CMD", "true"], "Interval": 2 * 10**9}
    for check, message in (({"Timeout": 5}, "Timeout in Healthcheck cannot be less than 1ms"),
                           ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
                           ({"Test": "true"}, "HealthConfig.Test")):
        with pytest.raises(InvalidArgument) as caught:
            health.validate(check)
        assert message in caught.value.message
