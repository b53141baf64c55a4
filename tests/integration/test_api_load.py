"""`berth system service` under load and abuse: 20 clients at once, bad
input answered with Docker's 400/404 (never a traceback), clients that go
away mid-stream leave nothing behind, SIGTERM with streams open."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_service import ApiService, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def api(berth):
    berth.image  # noqa: B018 (busybox:latest, imported once)
    service = ApiService(berth)
    yield service
    service.stop()
    assert b"Traceback" not in service.stderr_text.encode()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_twenty_clients_at_once(api, berth):
    def one(i):
        status, created = api.json("POST", f"/containers/create?name=load{i}",
                                   {"Image": "busybox", "Cmd": ["sh", "-c", f"echo {i}"],
                                    "HostConfig": {"NetworkMode": "none"}})
        assert status == 201, created
        cid = created["Id"]
        assert api.request("POST", f"/containers/{cid}/start")[0] == 204
        status, waited = api.json("POST", f"/containers/{cid}/wait")
        assert (status, waited["StatusCode"]) == (200, 0)
        status, _, logs = api.request("GET", f"/containers/{cid}/logs?stdout=1")
        assert logs == b"\x01\x00\x00\x00\x00\x00\x00" + bytes([len(str(i)) + 1]) + f"{i}\n".encode()
        assert api.request("DELETE", f"/containers/{cid}")[0] == 204
        return cid

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(one, i) for i in range(20)]
        # meanwhile the service answers others
        started = time.monotonic()
        assert api.request("GET", "/_ping")[0] == 200
        assert time.monotonic() - started < 5
        ids = [f.result(timeout=180) for f in futures]
    assert len(set(ids)) == 20
    assert berth("ps", "-aq").stdout == ""


def test_twenty_docker_runs_at_once(api, berth):
    procs = [subprocess.Popen(["docker", "run", "--rm", "--network", "none", "busybox", "echo", str(i)],
                              env=api.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 20, [o[1] for o in outs]
    assert sorted(int(o[0]) for o in outs) == list(range(20))
    assert berth("ps", "-aq").stdout == ""


BAD = [
    ("POST", "/containers/create", b"{", 400, "invalid JSON"),
    ("POST", "/containers/create", b"[]", 400, "cannot unmarshal array"),
    ("POST", "/containers/create", b'{"Image": 7}', 400, "cannot unmarshal number"),
    ("POST", "/containers/create", b'{"Image": "busybox", "Env": "A=1"}', 400, "cannot unmarshal string"),
    ("POST", "/containers/create", b'{"Image": "busybox", "Cmd": "true"}', 201, None),
    ("POST", "/containers/create", b'{"Image": "busybox"}', 400, "No command specified"),
    ("POST", "/containers/create", b'{"Image": "busybox", "Env": [1]}', 400, "cannot unmarshal"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": []}', 400, "cannot unmarshal array"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Memory": "x"}}', 400, "cannot unmarshal"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [5]}}}', 400,
     "cannot unmarshal"),
    ("POST", "/containers/create", b'{"Image": "busybox", "Labels": {"a": 1}}', 400, "cannot unmarshal"),
    ("POST", "/containers/create", b'{"Image": "nope:9"}', 404, "No such image: nope:9"),
    ("POST", "/containers/create?name=bad%20name", b'{"Image": "busybox", "Cmd": ["true"]}', 400,
     "Invalid container name"),
    ("GET", "/containers/json?limit=abc", None, 400, "invalid syntax"),
    ("GET", "/containers/json?filters=%7Bnot", None, 400, "invalid filter"),
    ("GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None, 400, "invalid filter 'bogus'"),
    ("POST", "/containers/nope/start", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/kill?signal=NOPE", None, 404, "No such container: nope"),
    ("GET", "/containers/nope/logs?stdout=1", None, 404, "No such container: nope"),
    ("POST", "/containers/nope/wait?condition=bogus", None, 400, "invalid condition"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", '
     b'"Target": "/x", "Source": "/tmp", "BindOptions": "x"}]}}', 400, "wrong type"),
    ("POST", "/containers/create", b'{"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n": 5}}}', 400,
     "cannot unmarshal"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"PidMode": ["host"]}}', 400,
     "cannot unmarshal array"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Dns": "1.1.1.1"}}', 400,
     "cannot unmarshal string"),
    ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Ulimits": [{"Name": "nofile"}]}}', 400,
     "cannot unmarshal"),
    ("POST", "/networks/create", b'{"Name": 5}', 400, "cannot unmarshal"),
    ("POST", "/networks/create", b'{"Name": "n", "IPAM": {"Config": ["x"]}}', 400, "wrong type"),
    ("POST", "/networks/create", b'{"Name": "n", "IPAM": {"Config": [{"Subnet": "nonsense"}]}}', 400,
     "invalid subnet"),
    ("POST", "/volumes/create", b'{"Labels": []}', 400, "cannot unmarshal"),
    ("GET", "/exec/nope/json", None, 404, "No such exec instance: nope"),
    ("GET", "/images/json?filters=%7B%22x%22%3A%5B%5D%7D", None, 400, "invalid filter"),
    ("DELETE", "/images/nope:1", None, 404, "No such image: nope:1"),
    ("GET", "/v1.44/version", None, 400, "too new"),
    ("GET", "/vabc/version", None, 404, "page not found"),
    ("PUT", "/_ping", None, 405, "method not allowed"),
    ("GET", "/containers/json/../../etc/passwd", None, 404, "page not found"),
]


def test_bad_input_gets_dockers_answers(api, berth):
    made = 0
    for method, path, body, status, message in BAD:
        got, headers, data = api.request(method, path, body, {"Content-Type": "application/json"} if body else None)
        assert got == status, (method, path, got, data)
        if message is not None:
            assert headers["Content-Type"] == "application/json"
            assert message in json.loads(data)["message"], (path, data)
        made += got == 201
    assert len(berth("ps", "-aq").stdout.split()) == made  # only the valid one


def test_body_size_limit(api):
    big = b'{"Image": "busybox", "Labels": {"x": "' + b"a" * (8 << 20) + b'"}}'
    status, _, data = api.request("POST", "/containers/create", big, {"Content-Type": "application/json"})
    assert status == 413 and "too large" in json.loads(data)["message"]


def _raw(api, request: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(api.socket)
    s.sendall(request)
    return s


def test_clients_going_away_mid_stream(api, berth):
    pid = api.proc.pid
    cid = berth("run", "-d", "--network", "none", berth.image, "sh", "-c",
                "while true; do echo tick; sleep 0.1; done", check=True).stdout.strip()
    wait_for(lambda: b"tick" in api.request("GET", f"/containers/{cid}/logs?stdout=1")[2])
    time.sleep(0.5)
    baseline = _threads(pid)
    for _ in range(5):
        for request in (f"GET /containers/{cid}/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n",
                        "GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
                        f"POST /containers/{cid}/attach?stream=1&stdout=1&stdin=1 HTTP/1.1\r\nHost: x\r\n"
                        "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
                        f"GET /containers/{cid}/stats HTTP/1.1\r\nHost: x\r\n\r\n"):
            s = _raw(api, request.encode())
            assert s.recv(4096)
            s.close()
    # the streams end, their threads too; the container did not notice
    wait_for(lambda: _threads(pid) <= baseline + 2, timeout=15)
    assert berth("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    assert api.request("GET", "/_ping")[0] == 200
    berth("rm", "-f", cid, check=True)


def test_a_docker_run_killed_mid_attach(api, berth):
    proc = subprocess.Popen(["docker", "run", "--name", "victim", "--network", "none", "busybox", "sh", "-c",
                             "echo started; sleep 1; echo done > /tmp/done; sleep 1"], env=api.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"started\n"
    proc.kill()
    proc.communicate()
    wait_for(lambda: berth("inspect", "-f", "{{.State.Status}}", "victim").stdout.strip() == "exited", timeout=15)
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "victim").stdout.strip() == "0"
    berth("rm", "victim", check=True)


def test_sigterm_with_streams_open(berth):
    berth.image  # noqa: B018
    service = ApiService(berth)
    cid = berth("run", "-d", "--network", "none", berth.image, "sleep", "60", check=True).stdout.strip()
    streams = [_raw(service, f"GET /containers/{cid}/logs?stdout=1&follow=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()),
               _raw(service, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")]
    for s in streams:
        assert s.recv(4096)
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0
    assert time.monotonic() - started < 15
    for s in streams:
        s.close()
    service.stop()
    assert berth("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"  # containers stay
    berth("rm", "-f", cid, check=True)
