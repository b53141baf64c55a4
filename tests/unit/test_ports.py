"""`-p`, `--expose` and `-P` parsing: Docker's shapes and error texts."""

import pytest

from berth.core.errors import InvalidArgument
from berth.core.networks import ports


@pytest.mark.parametrize("spec, expected", [
    ("80", [("80/tcp", {"HostIp": "", "HostPort": ""})]),
    ("8080:80", [("80/tcp", {"HostIp": "", "HostPort": "8080"})]),
    ("127.0.0.1:8080:80/udp", [("80/udp", {"HostIp": "127.0.0.1", "HostPort": "8080"})]),
    ("127.0.0.1::80", [("80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""})]),
    ("[::1]:8080:80", [("80/tcp", {"HostIp": "::1", "HostPort": "8080"})]),
    ("8000-8001:80-81/TCP", [("80/tcp", {"HostIp": "", "HostPort": "8000"}),
                             ("81/tcp", {"HostIp": "", "HostPort": "8001"})]),
    ("8000-8010:80", [("80/tcp", {"HostIp": "", "HostPort": "8000-8010"})]),
    ("80-81", [("80/tcp", {"HostIp": "", "HostPort": ""}), ("81/tcp", {"HostIp": "", "HostPort": ""})]),
])
def test_parse_publish(spec, expected):
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("abc", "invalid containerPort: abc"),
    ("0", "invalid containerPort: 0"),
    ("70000", "invalid containerPort: 70000"),
    ("x:80", "invalid hostPort: x"),
    ("80/icmp", "invalid proto: icmp"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
])
def test_parse_publish_errors(spec, message):
    with pytest.raises(InvalidArgument) as err:
        ports.parse_publish(spec)
    assert str(err.value) == message


def test_specs_merge_into_docker_shapes():
    exposed, bindings = ports.parse_publish_specs(["8080:80", "127.0.0.1:9090:80", "53/udp"])
    assert exposed == {"80/tcp": {}, "53/udp": {}}
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "9090"}],
                        "53/udp": [{"HostIp": "", "HostPort": ""}]}


def test_expose_and_publish_all():
    exposed = ports.parse_expose(["80", "90-91/udp"])
    assert exposed == {"80/tcp": {}, "90/udp": {}, "91/udp": {}}
    bound = ports.publish_all(exposed, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
    assert bound == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "90/udp": [{"HostIp": "", "HostPort": ""}],
                     "91/udp": [{"HostIp": "", "HostPort": ""}]}
    with pytest.raises(InvalidArgument):
        ports.parse_expose(["x"])


def test_sorted_keys():
    assert ports.sorted_keys(["443/tcp", "53/udp", "80/tcp", "53/tcp"]) == ["53/tcp", "53/udp", "80/tcp", "443/tcp"]
