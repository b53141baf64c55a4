"""What cri-dockerd (Kubernetes' shim to a Docker engine) asks of the Engine
API, held through the API itself (CI cannot fetch cri-dockerd): the
sandbox/app container pattern, label filters, container:<id> namespaces,
the json-file LogPath the kubelet reads, one-shot stats, a hijacked exec,
image references, and Docker's exact not-found texts."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from datetime import datetime

import pytest
from api_service import ApiService, wait_for

from berth.core.runtime.proc import oom_score_adj_floor

pytestmark = pytest.mark.root


@pytest.fixture
def api(berth):
    berth.image  # noqa: B018 (busybox:latest, imported once)
    service = ApiService(berth)
    yield service
    service.stop()


def _filters(**kw) -> str:
    return urllib.parse.quote(json.dumps(kw))


def test_pod_lifecycle_as_cri_dockerd_drives_it(api, berth):
    _, version = api.json("GET", "/version", expect=200)
    assert tuple(map(int, version["ApiVersion"].split("."))) >= (1, 42)
    _, info = api.json("GET", "/info", expect=200)
    assert info["CgroupDriver"] and info["DockerRootDir"]
    _, sandbox = api.json("POST", "/v1.43/containers/create?name=k8s_POD_web", {
        "Image": "busybox", "Hostname": "web-pod", "Entrypoint": ["sleep"], "Cmd": ["300"],
        "Labels": {"io.kubernetes.docker.type": "podsandbox", "io.kubernetes.pod.name": "web"},
        "HostConfig": {"NetworkMode": "none", "IpcMode": "shareable", "OomScoreAdj": -998,
                       "ShmSize": 64 << 20, "SecurityOpt": ["no-new-privileges"], "CpuShares": 2}}, expect=201)
    sb = sandbox["Id"]
    api.json("POST", f"/v1.43/containers/{sb}/start", expect=204)
    # -998 is what cri-dockerd gives sandboxes; lowering it needs CAP_SYS_RESOURCE, which a host may withhold:
    # then the sandbox keeps berth's own value and create says so.
    floor = oom_score_adj_floor()
    _, sb_info = api.json("GET", f"/containers/{sb}/json", expect=200)
    with open(f"/proc/{sb_info['State']['Pid']}/oom_score_adj") as f:
        assert int(f.read()) == (-998 if floor is None else floor)
    assert any("CAP_SYS_RESOURCE" in w for w in sandbox["Warnings"] or []) == (floor is not None)
    running = f"/containers/json?filters={_filters(label=['io.kubernetes.docker.type=podsandbox'], status=['running'])}"
    _, found = api.json("GET", running, expect=200)
    assert [c["Id"] for c in found] == [sb]
    _, app = api.json("POST", "/v1.43/containers/create?name=k8s_app_web", {
        "Image": "busybox", "Hostname": "", "Entrypoint": ["sh", "-c", "echo hi; exec sleep 300"],
        "Labels": {"io.kubernetes.docker.type": "container", "io.kubernetes.sandbox.id": sb},
        "HostConfig": {"NetworkMode": f"container:{sb}", "IpcMode": f"container:{sb}",
                       "PidMode": f"container:{sb}", "CpuShares": 512,
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m"}}}}, expect=201)
    cid = app["Id"]
    api.json("POST", f"/containers/{cid}/start", expect=204)
    _, by_sandbox = api.json("GET", f"/containers/json?all=1&filters={_filters(label=[f'io.kubernetes.sandbox.id={sb}'])}",
                             expect=200)
    assert [c["Id"] for c in by_sandbox] == [cid]
    _, inspected = api.json("GET", f"/containers/{cid}/json?size=1", expect=200)
    assert inspected["Config"]["Hostname"] == "web-pod"  # the sandbox's, as Docker (podman fails this)
    assert inspected["Path"] == "sh" and "SizeRw" in inspected
    log_path = inspected["LogPath"]

    def logged():
        try:
            with open(log_path) as f:
                return [json.loads(line) for line in f]
        except FileNotFoundError:
            return None
    lines = wait_for(logged)
    assert lines[0]["log"] == "hi\n" and lines[0]["stream"] == "stdout" and lines[0]["time"]
    _, stats = api.json("GET", f"/containers/{cid}/stats?stream=0&one-shot=1", expect=200)
    assert stats["id"] == cid and stats["memory_stats"]["usage"] > 0
    # exec, hijacked, as cri-dockerd's ExecSync
    exec_id, data = _exec(api, cid, ["sh", "-c", "echo $((6*7))"], tty=False)
    assert data.startswith(b"HTTP/1.1 101") and data.endswith(b"\x01\x00\x00\x00\x00\x00\x00\x0342\n")
    _, execd = api.json("GET", f"/exec/{exec_id}/json", expect=200)
    assert (execd["ExitCode"], execd["Running"]) == (0, False)
    # `crictl exec -it`: the terminal comes from the container's own devpts, so `tty` names it (as runc's)
    _, data = _exec(api, cid, ["tty"], tty=True)
    assert data.endswith(b"\r\n\r\n/dev/pts/0\r\n"), data
    for ref in (cid, sb):
        api.json("POST", f"/containers/{ref}/stop?t=1", expect=204)
        api.json("DELETE", f"/containers/{ref}", expect=204)
    assert berth("ps", "-aq").stdout == ""


def _exec(api, cid: str, cmd: list[str], tty: bool) -> tuple[str, bytes]:
    """exec create + a hijacked start: (exec ID, everything the connection carried)."""
    _, created = api.json("POST", f"/containers/{cid}/exec", {"Cmd": cmd, "AttachStdout": True,
                                                               "AttachStderr": True, "Tty": tty}, expect=201)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(api.socket)
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        s.sendall(f"POST /exec/{created['Id']}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return created["Id"], data


def test_images_by_reference_id_and_digest(api, berth):
    _, listed = api.json("GET", f"/images/json?filters={_filters(reference=['busybox'])}", expect=200)
    assert [i["RepoTags"] for i in listed] == [["busybox:latest"]]
    image_id = listed[0]["Id"]
    _, inspected = api.json("GET", "/images/busybox/json", expect=200)
    datetime.fromisoformat(inspected["Metadata"]["LastTagTime"])  # a time Go parses (cri-dockerd's runp)
    api.json("POST", "/images/busybox/tag?repo=registry.local/pause&tag=3.9", expect=201)
    _, untagged = api.json("DELETE", "/images/registry.local/pause:3.9", expect=200)
    assert untagged == [{"Untagged": "registry.local/pause:3.9"}]
    cid = berth("create", berth.image, "true", check=True).stdout.strip()
    committed = berth("commit", cid, check=True).stdout.strip()
    berth("rm", cid, check=True)
    _, deleted = api.json("DELETE", f"/images/{committed}", expect=200)
    assert {"Deleted": committed} in deleted
    status, body = api.json("DELETE", f"/images/{image_id}x")
    assert status == 404 and body["message"].startswith("No such image: ")
    status, body = api.json("GET", "/containers/nope/json")
    assert (status, body["message"]) == (404, "No such container: nope")
    status, body = api.json("DELETE", "/containers/nope")
    assert (status, body["message"]) == (404, "No such container: nope")
    status, body = api.json("GET", "/images/nope:1/json")
    assert (status, body["message"]) == (404, "No such image: nope:1")


def test_delete_by_digest(api, berth, registry_open):
    target = f"{registry_open.location}/cri/busybox:v1"
    berth("tag", "busybox", target, check=True)
    berth("push", target, check=True)
    _, inspected = api.json("GET", f"/images/{target}/json", expect=200)
    digest_ref = inspected["RepoDigests"][0]
    assert "@sha256:" in digest_ref
    _, untagged = api.json("DELETE", f"/images/{digest_ref}", expect=200)
    assert untagged == [{"Untagged": digest_ref}]


def _cgroup(controller: str, cid: str, name: str) -> str:
    with open(f"/sys/fs/cgroup/{controller}/berth/{cid}/{name}") as f:
        return f.read().strip()


def test_update_resources(api, berth):
    """docker update and cri-dockerd's UpdateContainerResources (CpuQuota/CpuPeriod): stored and applied."""

    cid = api.docker("run", "-d", "--network", "none", "busybox", "sleep", "60").stdout.strip()
    assert api.docker("update", "--memory", "64m", "--cpus", "0.5", cid).returncode == 0
    assert api.docker("update", "--memory", "512m", cid).returncode == 0  # raising above the old memory+swap
    _, info = api.json("GET", f"/containers/{cid}/json", expect=200)
    assert (info["HostConfig"]["Memory"], info["HostConfig"]["NanoCpus"]) == (512 << 20, 500_000_000)
    api.json("POST", f"/containers/{cid}/update", {"CpuQuota": 25000, "CpuPeriod": 100000, "CpuShares": 256},
             expect=200)
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if v2:
        assert _cgroup("", cid, "cpu.max").split()[0] == "25000"
        assert _cgroup("", cid, "memory.max") == str(512 << 20)
    else:
        assert _cgroup("cpu", cid, "cpu.cfs_quota_us") == "25000"
        assert _cgroup("memory", cid, "memory.limit_in_bytes") == str(512 << 20)
        assert _cgroup("cpu", cid, "cpu.shares") == "256"
    status, body = api.json("POST", f"/containers/{cid}/update", {"BlkioWeight": 300})
    assert status == 400 and "BlkioWeight" in body["message"]
    api.docker("rm", "-f", cid)


def test_seccomp_profile_masked_and_readonly_paths(api, berth, tmp_path):
    """critest's Security Context cases: cri-dockerd sends a localhost seccomp profile as its JSON in
    SecurityOpt (as the docker CLI does), and the pod's MaskedPaths/ReadonlyPaths; all three hold."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}
    script = "hostname blocked; echo hostname=$?; cat /etc/hostname; echo masked=$?; touch /tmp/x; echo ro=$?; " \
             "touch /var/x; echo rw=$?"
    _, created = api.json("POST", "/v1.43/containers/create", {
        "Image": "busybox", "Cmd": ["sh", "-c", script],
        "HostConfig": {"NetworkMode": "none", "CapAdd": ["SYS_ADMIN"],
                       "SecurityOpt": ["seccomp=" + json.dumps(profile)],
                       "MaskedPaths": ["/etc/hostname"], "ReadonlyPaths": ["/tmp"]}}, expect=201)
    cid = created["Id"]
    api.json("POST", f"/containers/{cid}/start", expect=204)
    _, waited = api.json("POST", f"/containers/{cid}/wait", expect=200)
    out = api.docker("logs", cid).stdout
    assert waited["StatusCode"] == 0 and "hostname=1\nmasked=0\n" in out, out  # /etc/hostname reads empty
    assert "ro=1" in out and "rw=0" in out and "Read-only file system" in api.docker("logs", cid).stderr, out
    _, info = api.json("GET", f"/containers/{cid}/json", expect=200)
    assert (info["HostConfig"]["MaskedPaths"], info["HostConfig"]["ReadonlyPaths"]) == (["/etc/hostname"], ["/tmp"])
    # the docker CLI reads the profile file and sends its JSON the same way
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    run = api.docker("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", "--security-opt",
                     f"seccomp={path}", "busybox", "sh", "-c", "hostname x || echo refused")
    assert run.stdout.strip() == "refused", run
    # a path on the daemon's host is no profile, and an empty list unmasks everything
    status, body = api.json("POST", "/containers/create", {"Image": "busybox",
                                                           "HostConfig": {"SecurityOpt": [f"seccomp={path}"]}})
    assert status == 400 and "seccomp" in body["message"]
    api.json("DELETE", f"/containers/{cid}", expect=204)


def test_app_container_of_an_exposing_image_and_a_host_ipc_sandbox(api, berth):
    """critest's nginx/httpd cases, HostIpc and DNS config: an app container joins the sandbox's network
    although its image EXPOSEs a port (only the request's own ExposedPorts conflict, as Docker's), a
    sandbox on the host's IPC namespace is a donor (its /dev/shm is the host's), and the joiner shares
    the sandbox's resolv.conf (what cri-dockerd writes there reaches it)."""
    image = f"cri-exposing-{berth.root.name}"
    berth("create", "--name", image, "busybox", "true", check=True)
    berth("commit", "--change", "EXPOSE 80", image, image, check=True)
    berth("rm", image, check=True)
    _, sandbox = api.json("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["sleep", "60"],
        "HostConfig": {"NetworkMode": "none", "IpcMode": "host"}}, expect=201)
    sb = sandbox["Id"]
    api.json("POST", f"/containers/{sb}/start", expect=204)
    # cri-dockerd writes the pod's DNS into the sandbox's ResolvConfPath, in place, after its start:
    # the containers joining its network share that file (critest's "DNS config")
    _, sb_info = api.json("GET", f"/containers/{sb}/json", expect=200)
    with open(sb_info["ResolvConfPath"], "r+") as f:
        f.truncate()
        f.write("nameserver 10.10.10.10\n")
    _, app = api.json("POST", "/containers/create", {
        "Image": image, "Cmd": ["sh", "-c", "readlink /proc/self/ns/ipc; ls -d /dev/shm; cat /etc/resolv.conf"],
        "HostConfig": {"NetworkMode": f"container:{sb}", "IpcMode": f"container:{sb}",
                       "PidMode": f"container:{sb}"}}, expect=201)
    api.json("POST", f"/containers/{app['Id']}/start", expect=204)
    _, waited = api.json("POST", f"/containers/{app['Id']}/wait", expect=200)
    out = api.docker("logs", app["Id"]).stdout
    assert waited["StatusCode"] == 0 and out.split() == [os.readlink("/proc/self/ns/ipc"), "/dev/shm",
                                                         "nameserver", "10.10.10.10"], out
    _, app_info = api.json("GET", f"/containers/{app['Id']}/json", expect=200)
    assert app_info["ResolvConfPath"] == sb_info["ResolvConfPath"]
    status, body = api.json("POST", "/containers/create", {
        "Image": image, "ExposedPorts": {"8080/tcp": {}}, "HostConfig": {"NetworkMode": f"container:{sb}"}})
    assert status == 400 and "port exposing" in body["message"]
    for ref in (app["Id"], sb):
        api.json("DELETE", f"/containers/{ref}?force=1", expect=204)
    berth("rmi", image, check=True)
