"""Legacy link variables: exactly moby's daemon/links/links.go."""

import pytest

from berth.core.errors import InvalidArgument
from berth.core.networks.links import link_env, parse_link


def test_parse_link():
    assert parse_link("db") == ("db", "db")
    assert parse_link("db:data") == ("db", "data")
    assert parse_link("/db:data") == ("db", "data")
    with pytest.raises(InvalidArgument):
        parse_link(":x")


def test_one_port_and_env():
    env = link_env("/web/my-db", "10.0.0.2", ["6379/tcp"], ["HOME=/root", "PATH=/bin", "PASSWORD=s=3", "BROKEN"])
    assert env == [
        "MY_DB_PORT=tcp://10.0.0.2:6379",
        "MY_DB_PORT_6379_TCP=tcp://10.0.0.2:6379",
        "MY_DB_PORT_6379_TCP_ADDR=10.0.0.2",
        "MY_DB_PORT_6379_TCP_PORT=6379",
        "MY_DB_PORT_6379_TCP_PROTO=tcp",
        "MY_DB_NAME=/web/my-db",
        "MY_DB_ENV_PASSWORD=s=3",
    ]


def test_tcp_first_and_ranges():
    # moby's TestLinkMultipleEnv: 6379-6381/tcp summarised as a range
    env = link_env("/db/docker", "172.0.17.2", ["6381/tcp", "6379/tcp", "6380/tcp", "53/udp"], [])
    assert env[0] == "DOCKER_PORT=tcp://172.0.17.2:6379"
    assert "DOCKER_PORT_6379_TCP_START=tcp://172.0.17.2:6379" in env
    assert "DOCKER_PORT_6379_TCP_END=tcp://172.0.17.2:6381" in env
    assert "DOCKER_PORT_6379_TCP_PORT_START=6379" in env
    assert "DOCKER_PORT_6379_TCP_PORT_END=6381" in env
    assert "DOCKER_PORT_53_UDP=udp://172.0.17.2:53" in env
    assert env.index("DOCKER_PORT_6381_TCP_PROTO=tcp") < env.index("DOCKER_PORT_53_UDP=udp://172.0.17.2:53")
    assert not any(v.startswith("DOCKER_PORT_53_UDP_START") for v in env)


def test_no_ports():
    assert link_env("/a/b", "10.0.0.3", [], []) == ["B_NAME=/a/b"]
