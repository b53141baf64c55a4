"""`berth system service`: where it listens, versions, Docker's errors, the
idle timeout and SIGTERM; and the docker CLI's everyday commands through it.

Each test runs a service of its own on a socket under its installation's
run directory (tests/api_service.py). dockerd is never started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time

import pytest
from api_service import DOCKER_20, ApiService, wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def api(berth):
    service = ApiService(berth)
    yield service
    service.stop()


def test_ping_version_info_and_paths(api, berth):
    status, headers, body = api.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["Api-Version"] == "1.43" and headers["Ostype"] == "linux"
    assert headers["Server"].startswith("Berth/")
    status, headers, body = api.request("HEAD", "/_ping")
    assert status == 200 and body == b""
    _, version = api.json("GET", "/v1.41/version", expect=200)
    assert (version["ApiVersion"], version["MinAPIVersion"], version["Os"]) == ("1.43", "1.24", "linux")
    _, bare = api.json("GET", "/version", expect=200)
    assert bare["Version"] == version["Version"]
    _, info = api.json("GET", "/info", expect=200)
    assert info["CgroupDriver"] == "cgroupfs" and info["DockerRootDir"] == str(berth.root)
    status, too_new = api.json("GET", "/v1.99/version")
    assert status == 400 and too_new["message"] == \
        "client version 1.99 is too new. Maximum supported API version is 1.43"
    status, too_old = api.json("GET", "/v1.12/version")
    assert status == 400 and "too old" in too_old["message"]


def test_the_socket_is_0660(api):
    mode = os.stat(api.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_errors_are_dockers(api, berth):
    status, body = api.json("GET", "/no/such/endpoint")
    assert (status, body) == (404, {"message": "page not found"})
    status, body = api.json("GET", "/containers/nope/json")
    assert (status, body) == (404, {"message": "No such container: nope"})
    status, body = api.json("GET", "/images/nope:1/json")
    assert (status, body) == (404, {"message": "No such image: nope:1"})
    status, _, data = api.request("POST", "/containers/create", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and json.loads(data)["message"].startswith("invalid JSON")
    status, body = api.json("POST", "/containers/create", {"Image": berth.image, "Cmd": 5})
    assert status == 400 and "cannot unmarshal number" in body["message"]
    status, body = api.json("POST", "/containers/create", {"Image": berth.image, "Cmd": ["true"],
                                                           "HostConfig": {"BlkioWeight": 300}})
    assert status == 400 and body["message"] == "berth does not support HostConfig.BlkioWeight (got 300) yet"
    status, _, data = api.request("POST", "/containers/create", b"[" * (5 << 20), {"Content-Type": "application/json"})
    assert status == 413 and "too large" in json.loads(data)["message"]
    assert berth("ps", "-aq").stdout == ""  # nothing half-made


def test_listen_refuses_a_tcp_address_that_is_not_loopback(berth):
    proc = berth("system", "service", "tcp://0.0.0.0:2375")
    assert proc.returncode == 125
    assert "refusing to listen on tcp://0.0.0.0:2375" in proc.stderr and "loopback" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tcp_on_loopback(berth):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = berth.popen("system", "service", "-t", "0", f"tcp://127.0.0.1:{port}", stderr=subprocess.PIPE)
    try:
        def answered():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                    c.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                    return c.recv(4096)
            except OSError:
                return None
        assert b"200 OK" in wait_for(answered)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stderr.close()


def test_idle_timeout_and_sigterm(berth):
    idle = ApiService(berth, timeout="1")
    started = time.monotonic()
    assert idle.proc.wait(15) == 0
    assert time.monotonic() - started < 10
    assert not os.path.exists(idle.socket)  # it removes its socket
    idle.stop()
    busy = ApiService(berth)
    time.sleep(1.5)
    assert busy.proc.poll() is None  # -t 0: never times out
    assert busy.stop() == 0


def test_socket_activation(berth):
    """systemd's LISTEN_FDS: the service takes fd 3 instead of binding."""
    path = str(berth.runroot / "activated.sock")
    berth.runroot.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    code = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS'] = '1'; "
            "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[2], sys.argv[2:])")
    import sys

    from harness import BERTH
    argv = [sys.executable, "-c", code, str(listener.fileno()), *BERTH, *berth.args(), "system", "service", "-t", "0"]
    proc = subprocess.Popen(argv, env=berth.env, pass_fds=[listener.fileno()], stderr=subprocess.PIPE)
    listener.close()
    try:
        def answered():
            try:
                with socket.socket(socket.AF_UNIX) as c:
                    c.connect(path)
                    c.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                    return c.recv(4096)
            except OSError:
                return None
        assert b"200 OK" in wait_for(answered)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stderr.close()


# -- the docker CLI -----------------------------------------------------------------------------


def test_docker_run_foreground_detached_and_stdin(api, berth):
    berth.image  # noqa: B018 (imported on first use)
    out = api.docker("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    piped = api.docker("run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "cat; echo done",
                       input="from stdin\n")
    assert (piped.returncode, piped.stdout) == (0, "from stdin\ndone\n")
    assert berth("ps", "-aq").stdout == ""  # --rm through the API removes, as berth's own
    run = api.docker("run", "-d", "--name", "ticker", "--network", "none", "busybox", "sh", "-c",
                     "echo started; exec sleep 60")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    assert berth("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"  # the CLI sees it
    ps = api.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}")
    assert ps.stdout.startswith(f"{cid[:12]} ticker Up")
    wait_for(lambda: api.docker("logs", "ticker").stdout == "started\n")
    execd = api.docker("exec", "ticker", "sh", "-c", "echo in; exit 4")
    assert (execd.returncode, execd.stdout) == (4, "in\n")
    piped = api.docker("exec", "-i", "ticker", "cat", input="to exec\n")
    assert piped.stdout == "to exec\n"
    assert api.docker("inspect", "-f", "{{.Name}} {{.State.Running}}", cid).stdout == "/ticker true\n"
    assert api.docker("stop", "-t", "1", "ticker").returncode == 0
    assert berth("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
    assert api.docker("rm", "ticker").returncode == 0
    assert berth("ps", "-aq").stdout == ""
    missing = api.docker("rm", "ticker")
    assert missing.returncode == 1 and "No such container: ticker" in missing.stderr


def test_made_by_the_cli_seen_through_the_api(api, berth):
    cid = berth("run", "-d", "--network", "none", "--label", "k=v", berth.image, "sleep", "60", check=True).stdout.strip()
    ps = api.docker("ps", "--no-trunc", "--filter", "label=k=v", "--format", "{{.ID}}")
    assert ps.stdout.split() == [cid]
    assert api.docker("ps", "-q", "--filter", "label=k=other").stdout == ""
    assert api.docker("rm", "-f", cid).returncode == 0
    assert berth("ps", "-aq").stdout == ""


def test_docker_20_cli(api, berth):
    berth.image  # noqa: B018
    version = api.docker("version", "--format", "{{.Server.APIVersion}}", cli=DOCKER_20)
    assert version.stdout.strip() == "1.43"
    run = api.docker("run", "--rm", "--network", "none", "busybox", "echo", "hello", cli=DOCKER_20)
    assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr


def test_a_service_killed_with_9_loses_nothing(berth):
    """Containers belong to their monitors: a new service sees them all, the stale socket is taken over,
    and the old service's starters do not outlive it."""
    berth.image  # noqa: B018
    first = ApiService(berth)
    run = first.docker("run", "-d", "--name", "survivor", "--network", "none", "busybox", "sleep", "60")
    assert run.returncode == 0, run.stderr
    starters = subprocess.run(["pgrep", "-P", str(first.proc.pid)], capture_output=True, text=True).stdout.split()
    assert starters
    first.proc.kill()
    first.proc.wait()
    first.stop()
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in starters))
    assert os.path.exists(first.socket)  # left behind by -9
    second = ApiService(berth)
    try:
        assert second.docker("inspect", "-f", "{{.State.Status}}", "survivor").stdout.strip() == "running"
        assert second.docker("rm", "-f", "survivor").returncode == 0
    finally:
        second.stop()


def _alive(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
