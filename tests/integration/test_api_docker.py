"""The docker CLI through `berth system service`, beyond run/ps/logs/exec:
cp, a TTY, networks with published ports and names, volumes, events,
stats, the HostConfig fields berth's run flags set, pull and push against a
docker-registry on 127.0.0.1."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
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


def test_cp_both_ways(api, berth, tmp_path):
    cid = api.docker("run", "-d", "--network", "none", "busybox", "sh", "-c",
                     "mkdir -p /data/sub && echo inner > /data/sub/f && echo top > /data/top && exec sleep 60"
                     ).stdout.strip()
    wait_for(lambda: api.docker("exec", cid, "test", "-f", "/data/top").returncode == 0)
    out = tmp_path / "out"
    out.mkdir()
    assert api.docker("cp", f"{cid}:/data", str(out)).returncode == 0
    assert (out / "data" / "sub" / "f").read_text() == "inner\n"
    assert api.docker("cp", f"{cid}:/data/top", str(out / "top2")).returncode == 0
    assert (out / "top2").read_text() == "top\n"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "deep.txt").write_text("deep\n")
    assert api.docker("cp", str(tmp_path / "in"), f"{cid}:/tmp/").returncode == 0
    assert api.docker("exec", cid, "cat", "/tmp/in/deep.txt").stdout == "deep\n"
    missing = api.docker("cp", f"{cid}:/nope", str(out))
    assert missing.returncode == 1 and "Could not find the file /nope in container" in missing.stderr
    assert not [p for p in berth.root.iterdir() if p.name.startswith(".api-cp-")]  # scratch removed
    api.docker("rm", "-f", cid)


def test_tty(api):
    """-t: the raw stream (no multiplexing headers), the container's own terminal size."""
    proc = subprocess.run(["script", "-qec", "docker run --rm -t --network none busybox sh -c 'stty size'",
                           "/dev/null"], env={**api.env, "COLUMNS": "80", "LINES": "24"}, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.replace(b"\r", b"").strip().splitlines()[-1] == b"24 80"


def test_network_names_ports_and_volumes(api, berth):
    assert api.docker("network", "create", "--label", "team=a", "apinet").returncode == 0
    assert "apinet" in api.docker("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}").stdout
    web = api.docker("run", "-d", "--name", "web", "--network", "apinet", "-p", "127.0.0.1::80",
                     "busybox", "sh", "-c", "echo hi > /www; exec httpd -f -p 80 -h /")
    assert web.returncode == 0, web.stderr
    port = api.docker("port", "web", "80").stdout.strip()
    assert port.startswith("127.0.0.1:")
    body = wait_for(lambda: _get(f"http://{port}/www"))
    assert body == "hi\n"
    peer = api.docker("run", "--rm", "--network", "apinet", "busybox", "wget", "-qO-", "http://web/www")
    assert peer.stdout == "hi\n", peer.stderr
    assert api.docker("volume", "create", "--label", "k=v", "vol1").stdout.strip() == "vol1"
    assert api.docker("volume", "ls", "-q", "--filter", "label=k=v").stdout.split() == ["vol1"]
    assert api.docker("run", "--rm", "-v", "vol1:/v", "--network", "none", "busybox", "sh", "-c",
                      "echo kept > /v/f").returncode == 0
    assert api.docker("run", "--rm", "-v", "vol1:/v", "--network", "none", "busybox", "cat", "/v/f").stdout == "kept\n"
    busy = api.docker("network", "rm", "apinet")
    assert busy.returncode == 1 and "has active endpoints" in busy.stderr
    assert api.docker("rm", "-f", "web").returncode == 0
    assert api.docker("network", "rm", "apinet").returncode == 0
    assert api.docker("volume", "rm", "vol1").returncode == 0
    assert berth("volume", "ls", "-q").stdout == ""


def _get(url):
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return None


def test_events_stats_and_inspect(api, berth):
    events = subprocess.Popen(["docker", "events", "--filter", "type=container", "--format", "{{.Action}}"],
                              env=api.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        cid = api.docker("run", "-d", "--network", "none", "busybox", "sleep", "60").stdout.strip()
        top = api.docker("top", cid)
        assert top.stdout.splitlines()[0].split() == ["UID", "PID", "PPID", "CMD"]
        assert top.stdout.splitlines()[1].split()[3:] == ["sleep", "60"]
        stats = api.docker("stats", "--no-stream", "--format", "{{.ID}} {{.PIDs}}", cid)
        assert stats.stdout.split() == [cid[:12], "1"], stats.stderr
        berth("rm", "-f", cid, check=True)  # the CLI's events reach the API's clients too
        seen = []
        deadline = time.monotonic() + 15
        while "destroy" not in seen and time.monotonic() < deadline:
            seen.append(events.stdout.readline().strip())
        assert seen[:2] == ["create", "start"] and "kill" in seen and "destroy" in seen
    finally:
        events.kill()
        events.wait()
        events.stdout.close()


def test_hostconfig_fields_of_the_run_flags(api):
    run = api.docker("run", "--rm", "--network", "none", "--add-host", "foo:1.2.3.4", "--ulimit", "nofile=100:200",
                     "--init", "--cap-add", "NET_ADMIN", "-e", "A=1", "-w", "/tmp", "-u", "1:1", "busybox",
                     "sh", "-c", "grep foo /etc/hosts; ulimit -n; echo $A; pwd; id -u")
    assert run.stdout.split() == ["1.2.3.4", "foo", "100", "1", "/tmp", "1"], run.stderr
    checked = api.docker("run", "--rm", "--network", "none", "--health-cmd", "true", "busybox", "true")
    assert checked.returncode == 0, checked.stderr  # health checks act (tests/integration/test_health.py)
    refused = api.docker("run", "--rm", "--network", "none", "--domainname", "example.org", "busybox", "true")
    assert refused.returncode == 125 and "berth does not support Config.Domainname" in refused.stderr
    bad = api.docker("run", "--rm", "--network", "none", "--pid", "container:nope", "busybox", "true")
    assert bad.returncode == 125 and "No such container: nope" in bad.stderr
    labelled = api.docker("create", "--label", "a=b", "--stop-signal", "SIGUSR1", "--restart", "on-failure:3",
                          "busybox", "true")
    info = json.loads(api.docker("inspect", labelled.stdout.strip()).stdout)[0]
    assert info["Config"]["Labels"]["a"] == "b" and info["Config"]["StopSignal"] == "SIGUSR1"
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    api.docker("rm", labelled.stdout.strip())


def test_pull_and_push_with_a_local_registry(api, berth, registry_open):
    target = f"{registry_open.location}/team/busybox:v1"
    assert api.docker("tag", "busybox", target).returncode == 0
    push = api.docker("push", target)
    assert push.returncode == 0, push.stderr
    assert "v1: digest: sha256:" in push.stdout
    assert api.docker("rmi", target).returncode == 0
    pull = api.docker("pull", target)
    assert pull.returncode == 0, pull.stderr
    assert f"Status: Downloaded newer image for {target}" in pull.stdout or "Image is up to date" in pull.stdout
    assert target in api.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
    missing = api.docker("pull", f"{registry_open.location}/team/nothing:v1")
    assert missing.returncode == 1 and "manifest unknown" in missing.stderr
    run = api.docker("run", "--rm", "--network", "none", f"{registry_open.location}/team/busybox:v1", "echo", "ok")
    assert run.stdout == "ok\n"


def test_start_attach_replays_and_follows(api):
    """attach with logs=1 (docker start -a, docker-compose up): what the container printed, then the rest."""
    cid = api.docker("create", "--network", "none", "busybox", "echo", "once").stdout.strip()
    first = api.docker("start", "-a", cid)
    assert (first.returncode, first.stdout) == (0, "once\n")
    api.docker("rm", cid)


def test_build(api, berth, tmp_path):
    """POST /build: the classic builder (DOCKER_BUILDKIT=0), a Dockerfile inside the context or outside it."""
    env = {**api.env, "DOCKER_BUILDKIT": "0"}
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "hello.txt").write_text("hi\n")
    (tmp_path / "ctx" / "Dockerfile").write_text('FROM busybox\nRUN echo built > /built\nCOPY hello.txt /h\n'
                                                 'CMD ["cat", "/built", "/h"]\n')
    built = subprocess.run(["docker", "build", "-t", "apibuilt:1", str(tmp_path / "ctx")], env=env,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert "Successfully tagged apibuilt:1" in built.stdout
    assert api.docker("run", "--rm", "--network", "none", "apibuilt:1").stdout == "built\nhi\n"
    (tmp_path / "outside.Dockerfile").write_text("FROM busybox\nCOPY hello.txt /again\n")
    outside = subprocess.run(["docker", "build", "-q", "-f", str(tmp_path / "outside.Dockerfile"),
                              str(tmp_path / "ctx")], env=env, capture_output=True, text=True, timeout=120)
    assert outside.returncode == 0 and outside.stdout.strip().startswith("sha256:"), outside.stderr
    (tmp_path / "bad.Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    failed = subprocess.run(["docker", "build", "-f", str(tmp_path / "bad.Dockerfile"), str(tmp_path / "ctx")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "returned a non-zero code: 3" in failed.stderr
    assert berth("ps", "-aq").stdout == ""  # no intermediate container left


def test_save_load_commit_history(api, berth, tmp_path):
    """docker save | docker load through the service (tar streams both ways), commit, history, rmi."""
    archive = tmp_path / "busybox.tar"
    assert api.docker("save", "-o", str(archive), "busybox").returncode == 0
    assert archive.stat().st_size > 100_000
    cid = api.docker("run", "-d", "--network", "none", "busybox", "sh", "-c", "echo made > /made; sleep 60"
                     ).stdout.strip()
    wait_for(lambda: api.docker("exec", cid, "cat", "/made").stdout == "made\n")
    assert api.docker("commit", "-m", "a note", cid, "committed:1").returncode == 0
    api.docker("rm", "-f", cid)
    assert "a note" in api.docker("history", "--no-trunc", "committed:1").stdout
    assert api.docker("run", "--rm", "--network", "none", "committed:1", "cat", "/made").stdout == "made\n"
    assert api.docker("rmi", "committed:1").returncode == 0
    assert api.docker("rmi", "busybox").returncode == 0
    assert "busybox" not in api.docker("images").stdout
    loaded = api.docker("load", "-i", str(archive))
    assert loaded.returncode == 0 and "Loaded image: busybox:latest" in loaded.stdout, loaded.stderr
    assert api.docker("run", "--rm", "--network", "none", "busybox", "echo", "back").stdout == "back\n"


def test_export_search_df_and_stats_io(api, berth, registry_open):
    """docker export (the tar streamed), docker search (a registry's catalog), docker system df [-v]
    (containers, volumes and build cache beside images, as `berth system df`), docker stats' network
    and block I/O (runtime.cgroups.read_stats, as `berth stats`)."""
    cid = api.docker("run", "-d", "--name", "io", "-v", "dfvol:/v", "busybox", "sh", "-c",
                     f"echo made > /made-here; echo v > /v/f; ping -c1 -W1 {berth.subnet}.1; touch /done; "
                     "exec sleep 60").stdout.strip()
    wait_for(lambda: api.docker("exec", cid, "test", "-f", "/done").returncode == 0)
    stats = api.docker("stats", "--no-stream", "--format", "{{.NetIO}}|{{.BlockIO}}", cid).stdout.strip()
    net, block = stats.split("|")
    assert net.split(" / ")[1] != "0B" and len(block.split(" / ")) == 2, stats
    _, raw = api.json("GET", f"/containers/{cid}/stats?stream=0&one-shot=1", expect=200)
    assert raw["networks"]["eth0"]["tx_packets"] >= 1
    assert [e["op"] for e in raw["blkio_stats"]["io_service_bytes_recursive"]] == ["read", "write"]
    exported = api.docker("export", cid, input=b"")
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        member = next(m for m in tar.getmembers() if m.name.lstrip("./") == "made-here")
        assert tar.extractfile(member).read() == b"made\n"
    missing = api.docker("export", "ghost")
    assert missing.returncode == 1 and "No such container: ghost" in missing.stderr
    fmt = "{{.Type}} {{.TotalCount}} {{.Active}}"
    shown = api.docker("system", "df", "--format", fmt).stdout
    assert shown == berth("system", "df", "--format", fmt).stdout
    assert shown.splitlines() == ["Images 1 1", "Containers 1 1", "Local Volumes 1 1", "Build Cache 0 0"]
    verbose = api.docker("system", "df", "-v").stdout
    assert "dfvol" in verbose and cid[:12] in verbose
    for repo in ("srch/web", "srch/webapp", "srch/db"):
        berth("tag", "busybox", f"{registry_open.location}/{repo}:v1", check=True)
        berth("push", "-q", f"{registry_open.location}/{repo}:v1", check=True)
    found = api.docker("search", "--format", "{{.Name}}", f"{registry_open.location}/srch/web")
    assert sorted(found.stdout.split()) == [f"{registry_open.location}/srch/web",
                                            f"{registry_open.location}/srch/webapp"], found.stderr
    bad = api.docker("search", "--limit", "101", f"{registry_open.location}/web")
    assert bad.returncode == 1 and "Limit 101 is outside the range of [1, 100]" in bad.stderr
    api.docker("rm", "-f", cid)
