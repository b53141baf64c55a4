"""Registry requests are retried as they should be (issue #11): an idempotent request
(GET, HEAD) that meets a 429, 500, 502, 503 or 504 or a connection reset is tried again
after an exponential back-off with jitter, or after the Retry-After the registry asked for
(urllib3's Retry); a 404 or a push is not retried; a registry that keeps failing is
reported in one line."""

from __future__ import annotations

import json
import socket
import struct
import time

from berth.testing.registries import make_image


def serve(server, image, manifest_route) -> str:
    base = "/v2/flaky/img"
    server.routes.update({
        ("GET", "/v2/"): (200, {}, b"{}"),
        ("GET", f"{base}/manifests/1"): manifest_route,
        ("GET", f"{base}/blobs/{image.config_digest}"): (200, {}, image.config),
        ("GET", f"{base}/blobs/{image.layer_digest}"): (200, {}, image.layer),
    })
    return f"{server.location}/flaky/img:1"


def scripted(image, answers):
    """A manifest route answering `answers` in turn (then the manifest); records when."""
    times = []

    def route(handler):
        times.append(time.monotonic())
        if len(times) <= len(answers):
            answer = answers[len(times) - 1]
            if answer == "reset":  # close with RST, before any answer
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                handler.close_connection = True
                raise ConnectionResetError("scripted reset")
            return answer
        return 200, {"Content-Type": image.media_type}, image.manifest

    return route, times


ERROR = {"Content-Type": "application/json"}


def test_transient_failures_are_retried_and_retry_after_honoured(berth, fake_server_factory):
    image = make_image("flaky")
    route, times = scripted(image, [
        (503, ERROR, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}'),
        (429, {**ERROR, "Retry-After": "2"}, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'),
        (502, {}, b"bad gateway"),
    ])
    name = serve(fake_server_factory(), image, route)
    p = berth("pull", name)
    assert p.returncode == 0, p.stderr
    assert len(times) == 4
    assert times[2] - times[1] >= 1.9  # the Retry-After of the 429
    assert json.loads(berth("inspect", name, check=True).stdout)[0]["RootFS"]["Layers"] == \
        json.loads(image.config)["rootfs"]["diff_ids"]


def test_a_registry_that_keeps_failing_is_one_line_after_the_retries(berth, fake_server_factory):
    image = make_image("down")
    route, times = scripted(image, [(500, ERROR, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')] * 10)
    name = serve(fake_server_factory(), image, route)
    p = berth("pull", name)
    assert p.returncode == 1 and p.stderr.strip().splitlines() == ["Error: unknown: boom"], p.stderr
    assert len(times) == 4  # one try and three retries
    assert times[3] - times[0] >= 0.5  # backed off


def test_not_found_and_long_retry_after_are_not_waited_for(berth, fake_server_factory):
    image = make_image("gone")
    route, times = scripted(image, [(404, ERROR, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')])
    name = serve(fake_server_factory(), image, route)
    p = berth("pull", name)
    assert p.returncode == 1 and len(times) == 1, p.stderr
    route, times = scripted(image, [(429, {**ERROR, "Retry-After": "3600"},
                                     b'{"errors":[{"code":"TOOMANYREQUESTS","message":"come back in an hour"}]}')])
    name = serve(fake_server_factory(), image, route)
    started = time.monotonic()
    p = berth("pull", name)
    assert p.returncode == 1 and "come back in an hour" in p.stderr and len(times) == 1
    assert time.monotonic() - started < 30


def test_a_connection_reset_is_retried(berth, fake_server_factory):
    image = make_image("reset")
    route, times = scripted(image, ["reset", "reset"])
    name = serve(fake_server_factory(), image, route)
    p = berth("pull", name)
    assert p.returncode == 0, p.stderr
    assert len(times) == 3
