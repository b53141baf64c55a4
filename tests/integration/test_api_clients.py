"""Real clients of the Docker Engine API against `berth system service`:
docker-py, docker-compose 1.29 (Debian's) and testcontainers-python."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest
from api_service import ApiService, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def api(berth):
    berth.image  # noqa: B018 (busybox:latest, imported once)
    service = ApiService(berth)
    yield service
    service.stop()


def test_docker_py(api, berth, registry_open):
    import docker

    client = docker.DockerClient(base_url=api.host)
    try:
        assert client.version()["ApiVersion"] == "1.43"
        assert client.containers.run("busybox", "echo hi", network_mode="none", remove=True) == b"hi\n"
        c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; exec sleep 60"], detach=True,
                                  network_mode="none", labels={"by": "docker-py"})
        wait_for(lambda: c.logs() == b"one\ntwo\n")
        assert c.logs(stderr=False) == b"one\n"
        result = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
        assert (result.exit_code, result.output) == (3, (b"out\n", b"err\n"))
        c.reload()
        assert c.status == "running" and c.labels["by"] == "docker-py"
        assert [x.id for x in client.containers.list(filters={"label": "by=docker-py"})] == [c.id]
        c.remove(force=True)
        target = f"{registry_open.location}/py/busybox:v1"
        client.images.get("busybox").tag(target)
        client.images.push(target)
        client.images.remove(target)
        pulled = client.images.pull(target)
        assert target in pulled.tags
        with pytest.raises(docker.errors.NotFound, match="No such container: nope"):
            client.containers.get("nope")
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get("nope:1")
    finally:
        client.close()
    assert berth("ps", "-aq").stdout == ""


COMPOSE = """\
version: "3.7"
services:
  web:
    image: busybox
    command: sh -c "echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - data:/www
    networks: [back]
  client:
    image: busybox
    command: sh -c "until wget -qO- http://web/index.html; do sleep 0.2; done; exec sleep 60"
    depends_on: [web]
    networks: [back]
volumes:
  data: {{}}
networks:
  back: {{}}
"""


def test_docker_compose(api, berth, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(port=port))

    def compose(*args):
        return subprocess.run(["docker-compose", "-p", "apitest", *args], cwd=tmp_path, env=api.env,
                              capture_output=True, text=True, timeout=120)

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        ps = compose("ps")
        assert "apitest_web_1" in ps.stdout and f"127.0.0.1:{port}->80/tcp" in ps.stdout
        wait_for(lambda: "hello-from-web" in compose("logs", "client").stdout, timeout=20)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5).read() == b"hello-from-web\n"
        assert "apitest_data" in berth("volume", "ls", "-q").stdout
    finally:
        down = compose("down", "-v")
    assert down.returncode == 0, down.stderr
    assert berth("ps", "-aq").stdout == ""
    assert "apitest" not in berth("network", "ls").stdout and berth("volume", "ls", "-q").stdout == ""


def test_testcontainers(api, berth, monkeypatch):
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("DOCKER_HOST", api.host)
    from testcontainers.core.container import DockerContainer

    container = DockerContainer("busybox").with_command(
        "sh -c 'echo hi > /index.html; exec httpd -f -p 80 -h /'").with_exposed_ports(80)
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(80)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=2).read() == b"hi\n"
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert berth("ps", "-aq").stdout == ""
    assert os.environ["DOCKER_HOST"] == api.host


def test_prometheus_docker_sd_fields(api, berth):
    """What Prometheus's docker_sd_configs reads (discovery/moby/docker.go: ContainerList and
    NetworkList) becomes its __meta_docker_* labels; no Prometheus binary here, so the targets are
    built from the same fields the same way."""
    assert api.docker("network", "create", "--label", "tier=web", "sdnet").returncode == 0
    cid = api.docker("run", "-d", "--network", "sdnet", "--label", "job=web", "-p", "127.0.0.1::80", "busybox",
                     "sleep", "60").stdout.strip()
    _, containers = api.json("GET", "/v1.41/containers/json", expect=200)
    _, networks = api.json("GET", "/v1.41/networks", expect=200)
    by_id = {n["Id"]: n for n in networks}
    targets = []
    for c in containers:
        common = {"__meta_docker_container_id": c["Id"], "__meta_docker_container_name": c["Names"][0],
                  "__meta_docker_container_network_mode": c["HostConfig"]["NetworkMode"],
                  **{f"__meta_docker_container_label_{k}": v for k, v in c["Labels"].items()}}
        for n in c["NetworkSettings"]["Networks"].values():
            net = by_id[n["NetworkID"]]
            for p in c["Ports"]:
                targets.append({**common, "__meta_docker_network_name": net["Name"],
                                "__meta_docker_network_ip": n["IPAddress"],
                                "__meta_docker_network_label_tier": net["Labels"].get("tier"),
                                "__meta_docker_network_scope": net["Scope"],
                                "__meta_docker_network_internal": str(net["Internal"]).lower(),
                                "__meta_docker_port_private": str(p["PrivatePort"]),
                                "__meta_docker_port_public": str(p.get("PublicPort", "")),
                                "__meta_docker_port_public_ip": p.get("IP", ""),
                                "__address__": f"{n['IPAddress']}:{p['PrivatePort']}"})
    [target] = targets
    assert target["__meta_docker_container_id"] == cid
    assert target["__meta_docker_container_label_job"] == "web"
    assert target["__meta_docker_container_network_mode"] == "sdnet"
    assert target["__meta_docker_network_name"] == "sdnet" and target["__meta_docker_network_label_tier"] == "web"
    assert target["__meta_docker_network_ip"].count(".") == 3 and target["__address__"].endswith(":80")
    assert target["__meta_docker_port_public_ip"] == "127.0.0.1" and int(target["__meta_docker_port_public"]) > 0
    api.docker("rm", "-f", cid)
    api.docker("network", "rm", "sdnet")
