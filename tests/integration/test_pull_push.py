"""pull and push against a real registry (Debian's docker-registry on
127.0.0.1), checked with skopeo from the other side; faults come from a
small TCP proxy in front of the registry that throttles, drops or corrupts
blob downloads."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rootfs import tar_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """An open docker-registry on 127.0.0.1; yields its host:port."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(tmp_path / "registry-data")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Proxy:
    """A TCP proxy to the registry. mode: "pass", "slow" (throttled blob
    bodies), "drop" (closes a blob download after 64 KiB) or "corrupt"
    (flips a byte of every blob body). Records the request lines."""

    def __init__(self, upstream: str):
        self.upstream = upstream.split(":")
        self.mode = "pass"
        self.requests: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        up = socket.create_connection((self.upstream[0], int(self.upstream[1])))
        last = [""]

        def forward_requests():
            try:
                while data := client.recv(65536):
                    line = data.split(b"\r\n", 1)[0].decode("latin-1")
                    if line.split(" ")[0] in ("GET", "HEAD", "PUT", "POST", "PATCH"):
                        last[0] = line
                        self.requests.append(line)
                    up.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    up.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=forward_requests, daemon=True).start()
        sent = 0
        try:
            while data := up.recv(65536):
                blob = last[0].startswith("GET ") and "/blobs/sha256:" in last[0]
                if blob and self.mode == "slow":
                    time.sleep(0.02)
                if blob and self.mode == "corrupt" and len(data) > 1024:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                sent += len(data)
                if blob and self.mode == "drop" and sent > 65536:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, up):  # shutdown wakes the other thread's recv; close alone does not
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def proxy(registry):
    p = Proxy(registry)
    yield p
    p.close()


def inspect(b, name):
    return json.loads(b("image", "inspect", name, check=True).stdout)[0]


def image_rows(b) -> int:
    if not (b.root / "berth.db").exists():
        return 0
    with sqlite3.connect(b.root / "berth.db") as db:
        return db.execute("SELECT count(*) FROM images").fetchone()[0]


def blob_files(b) -> list[str]:
    d = b.root / "blobs" / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_push_then_pull_on_a_clean_root(berth, other, registry):
    name = f"{registry}/team/busybox:v1"
    berth("tag", berth.image, name, check=True)
    res = berth("push", name, check=True)
    lines = res.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry}/team/busybox]"
    assert any(line.endswith(": Pushed") for line in lines)
    assert lines[-1].startswith("v1: digest: sha256:") and " size: " in lines[-1]
    digest = lines[-1].split()[2]

    # the pull inside run: Docker's words and the same progress as pull, on stderr; stdout is the container's
    ran = other("run", "--rm", "--network", "none", f"{registry}/team/busybox:v1", "echo", "hi", check=True)
    assert ran.stdout == "hi\n"
    err = ran.stderr.splitlines()
    assert err[:2] == [f"Unable to find image '{name}' locally", "v1: Pulling from team/busybox"], err
    assert any(line.endswith(": Pull complete") for line in err)
    assert err[-2:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}"]
    other("rmi", name, check=True)

    res = other("pull", name, check=True)
    out = res.stdout.splitlines()
    assert out[0] == "v1: Pulling from team/busybox"
    assert any(line.endswith(": Pull complete") for line in out)
    assert out[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {name}", name]
    mine, theirs = inspect(berth, name), inspect(other, name)
    assert theirs["Id"] == mine["Id"] and theirs["RootFS"] == mine["RootFS"]
    assert theirs["RepoDigests"] == [f"{registry}/team/busybox@{digest}"]

    again = other("pull", name, check=True).stdout.splitlines()
    assert again == ["v1: Pulling from team/busybox", f"Digest: {digest}",
                     f"Status: Image is up to date for {name}", name]
    by_digest = other("pull", "-q", f"{registry}/team/busybox@{digest}", check=True)
    assert by_digest.stdout.strip() == f"{registry}/team/busybox@{digest}"


def test_skopeo_reads_what_berth_pushed(berth, registry, tmp_path):
    name = f"{registry}/sk/busybox:t"
    berth("tag", berth.image, name, check=True)
    berth("push", name, check=True)
    info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}"],
                                     capture_output=True, text=True, check=True).stdout)
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
                                    capture_output=True, text=True, check=True).stdout)
    mine = inspect(berth, name)
    assert info["Layers"] == [layer["digest"] for layer in raw["layers"]]
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:t"],
                   check=True, capture_output=True)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    # skopeo compresses what berth pushed uncompressed: compare the layer contents
    contents = [sha(gzip.decompress((layout / "blobs" / "sha256" / l["digest"][7:]).read_bytes()))
                for l in manifest["layers"]]
    assert contents == info["Layers"] == mine["RootFS"]["Layers"]


def _oci_image(layout: Path, arch: str, payload: bytes) -> tuple[bytes, dict]:
    """Write one single-layer image's blobs into `layout`; return (manifest bytes, index descriptor)."""
    layer = tar_of({"payload": payload, "bin/true": b""})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": sha(layer), "size": len(layer)}]}).encode()
    for blob in (layer, config, manifest):
        (layout / "blobs" / "sha256" / sha(blob)[7:]).write_bytes(blob)
    return manifest, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest),
                      "size": len(manifest), "platform": {"architecture": arch, "os": "linux"}}


def test_pull_a_multi_platform_index_skopeo_pushed(other, registry, tmp_path):
    from berth.core.oci.platform import arch

    here = arch()
    there = "arm64" if here != "arm64" else "amd64"
    layout = tmp_path / "multi"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    _, mine = _oci_image(layout, here, b"for " + here.encode())
    _, theirs = _oci_image(layout, there, b"for " + there.encode())
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [theirs, mine]}).encode()
    (layout / "blobs" / "sha256" / sha(index)[7:]).write_bytes(index)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(index), "size": len(index),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
    name = f"{registry}/plat/multi:1"
    subprocess.run(["skopeo", "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi",
                    f"docker://{name}"], check=True, capture_output=True)

    pushed = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
                            capture_output=True, check=True).stdout  # skopeo rewrote the index: ask it
    assert len(json.loads(pushed)["manifests"]) == 2
    res = other("pull", name, check=True)
    assert res.stdout.splitlines()[-3] == f"Digest: {sha(pushed)}"
    assert inspect(other, name)["Architecture"] == here
    other("pull", "--platform", f"linux/{there}", f"{registry}/plat/multi:1", check=True)
    assert inspect(other, name)["Architecture"] == there
    res = other("pull", "--platform", "linux/s390x", name)
    assert res.returncode == 1 and "no matching manifest for linux/s390x" in res.stderr


def test_all_tags_and_unknown_tag(berth, other, registry):
    for tag in ("a", "b"):
        berth("tag", berth.image, f"{registry}/many/img:{tag}", check=True)
    res = berth("push", "-a", f"{registry}/many/img", check=True)
    assert [l.split(":")[0] for l in res.stdout.splitlines() if ": digest: " in l] == ["a", "b"]
    other("pull", "-a", f"{registry}/many/img", check=True)
    assert inspect(other, f"{registry}/many/img:a")["Id"] == inspect(other, f"{registry}/many/img:b")["Id"]
    res = other("pull", f"{registry}/many/img:nope")
    assert res.returncode == 1 and "manifest unknown" in res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_layer_already_present_is_not_downloaded_again(berth, other, proxy, registry):
    base = f"{proxy.address}/dedup/base:1"
    berth("tag", berth.image, base, check=True)
    berth("push", base, check=True)
    berth("tag", berth.image, f"{proxy.address}/dedup/copy:1", check=True)
    res = berth("push", f"{proxy.address}/dedup/copy:1", check=True)
    assert "Mounted from dedup/base" in res.stdout  # cross-repository mount, no upload
    other("pull", base, check=True)
    proxy.requests.clear()
    res = other("pull", f"{proxy.address}/dedup/copy:1", check=True)
    assert "Already exists" in res.stdout
    assert [r for r in proxy.requests if "/blobs/" in r] == []


@pytest.fixture
def big_image(berth, registry, tmp_path):
    """A pushed image with a 50 MB random layer; returns its name."""
    path = tmp_path / "big.tar"
    path.write_bytes(tar_of({"random.bin": os.urandom(50 << 20)}))
    name = f"{registry}/big/random:1"
    berth("import", str(path), name, check=True)
    berth("push", name, check=True, timeout=120)
    return name.split("/", 1)[1]


def _partial_blob_size(pid: int, blobs: Path) -> int:
    """Bytes in the temporary blob process `pid` is writing (0 if none yet):
    an anonymous (O_TMPFILE) file in the blobs directory, seen through /proc."""
    biggest = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(f"{blobs}/") and ("(deleted)" in target or "/.tmp-" in target):
                biggest = max(biggest, os.stat(f"/proc/{pid}/fd/{fd}").st_size)
        except OSError:
            pass
    return biggest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_pull_leaves_nothing_and_the_next_completes(other, proxy, big_image, sig):
    """SIGTERM (as Ctrl-C) cleans up; after SIGKILL only whole, verified blobs may stay."""
    proxy.mode = "slow"
    name = f"{proxy.address}/{big_image}"
    blobs = other.root / "blobs" / "sha256"
    proc = other.popen("pull", name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (blobs.exists() and _partial_blob_size(proc.pid, blobs) > (1 << 20)):
            assert time.monotonic() < deadline and proc.poll() is None, "the download never started"
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert image_rows(other) == 0
    left = blob_files(other)
    assert [f for f in left if f.startswith(".tmp-")] == []
    if sig == signal.SIGTERM:
        assert left == []
    for f in left:  # no half blob under a real name
        assert hashlib.sha256((blobs / f).read_bytes()).hexdigest() == f
    proxy.mode = "pass"
    other("pull", name, check=True, timeout=120)
    assert image_rows(other) == 1


@pytest.mark.parametrize("mode,message", [("drop", ""), ("corrupt", "digest mismatch")])
def test_broken_downloads_are_refused_and_nothing_is_stored(other, proxy, big_image, mode, message):
    proxy.mode = mode
    name = f"{proxy.address}/{big_image}"
    res = other("pull", name, timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("Error: ") and message in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert image_rows(other) == 0 and blob_files(other) == []
    proxy.mode = "pass"
    other("pull", name, check=True, timeout=120)


# -- authentication ------------------------------------------------------------

from berth.testing.registries import PASSWORD, USER, make_image  # noqa: E402  (fixtures: the kit's plugin)


def test_login_push_pull_logout_with_htpasswd(berth, registry_htpasswd):
    loc = registry_htpasswd.location
    auth_file = berth.root.parent / "auth.json"
    bad = berth("login", "-u", USER, "--password-stdin", loc, input="wrong-password\n")
    assert bad.returncode == 1 and "unauthorized" in bad.stderr and "wrong-password" not in bad.stderr
    assert not auth_file.exists()
    res = berth("login", "-u", USER, "-p", PASSWORD, loc)
    assert res.returncode == 0 and res.stdout == "Login Succeeded\n"
    assert "WARNING! Using --password via the CLI is insecure. Use --password-stdin." in res.stderr
    assert auth_file.stat().st_mode & 0o777 == 0o600
    assert loc in json.loads(auth_file.read_text())["auths"]
    res = berth("login", "-u", USER, "--password-stdin", loc, input=PASSWORD + "\n")
    assert res.stdout == "Login Succeeded\n" and res.stderr == ""

    name = f"{loc}/private/busybox:1"
    berth("tag", berth.image, name, check=True)
    pushed = berth("push", name, check=True)
    berth("rmi", name, check=True)
    pulled = berth("pull", name, check=True)
    secret_forms = (PASSWORD, __import__("base64").b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    journal = (berth.root / "events.jsonl").read_text()
    assert '"push"' in journal and '"pull"' in journal
    for text in (pushed.stdout, pushed.stderr, pulled.stdout, pulled.stderr, journal):
        assert not any(s in text for s in secret_forms)

    assert berth("logout", loc, check=True).stdout == f"Removing login credentials for {loc}\n"
    assert loc not in json.loads(auth_file.read_text()).get("auths", {})
    denied = berth("pull", name)
    assert denied.returncode == 1 and "unauthorized" in denied.stderr.lower()
    assert berth("logout", loc, check=True).stdout == f"Not logged in to {loc}\n"


# -- a registry that lies ------------------------------------------------------------


def _serve(server, image, **over):
    """Routes for `image` under repository lie/img, tag 1; `over` replaces some."""
    base = "/v2/lie/img"
    routes = {
        ("GET", "/v2/"): (200, {}, b"{}"),
        ("GET", f"{base}/manifests/1"): (200, {"Content-Type": image.media_type}, image.manifest),
        ("GET", f"{base}/blobs/{image.config_digest}"): (200, {}, image.config),
        ("GET", f"{base}/blobs/{image.layer_digest}"): (200, {}, image.layer),
    }
    for key, value in over.items():
        routes[{"manifest": ("GET", f"{base}/manifests/1"), "layer": ("GET", f"{base}/blobs/{image.layer_digest}"),
                "config": ("GET", f"{base}/blobs/{image.config_digest}")}[key]] = value
    server.routes.update(routes)
    return f"{server.location}/lie/img:1"


def _lies(image):
    index_and_manifest = json.loads(image.manifest)
    index_and_manifest["manifests"] = []
    return {
        "wrong-digest": ({"layer": (200, {}, image.layer[:50] + bytes([image.layer[50] ^ 0xFF]) + image.layer[51:])},
                         "digest"),
        "truncated": ({"layer": (200, {"Content-Length": str(len(image.layer)), "Connection": "close"},
                                 image.layer[:100])}, ""),
        "index-and-manifest": ({"manifest": (200, {"Content-Type": image.media_type},
                                             json.dumps(index_and_manifest).encode())}, "index"),
        "media-type": ({"manifest": (200, {"Content-Type": "application/vnd.oci.image.index.v1+json"},
                                     image.manifest)}, "disagrees"),
        "server-error": ({"layer": (500, {"Content-Type": "application/json"},
                                    b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')}, ""),
        "bad-config-digest": ({"manifest": (200, {"Content-Type": image.media_type}, image.manifest.replace(
            image.config_digest.encode(), b"sha256:../../../../etc/passwd"))}, "invalid digest"),
    }


@pytest.mark.parametrize("lie", ["wrong-digest", "truncated", "index-and-manifest", "media-type", "server-error",
                                 "bad-config-digest"])
def test_a_lying_registry_is_refused_and_nothing_is_stored(berth, fake_server_factory, lie):
    image = make_image("lies")
    over, message = _lies(image)[lie]
    name = _serve(fake_server_factory(), image, **over)
    res = berth("pull", name, timeout=60)
    assert res.returncode == 1 and res.stderr.startswith("Error: ") and message in res.stderr, res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert image_rows(berth) == 0 and blob_files(berth) == []


def test_a_truthful_fake_registry_works(berth, fake_server_factory):
    """The control for the lies above: the same server serving the truth."""
    image = make_image("truth", docker=True)
    name = _serve(fake_server_factory(), image)
    res = berth("pull", name, check=True)
    assert res.stdout.splitlines()[-3] == f"Digest: {image.digest}"
    assert inspect(berth, name)["RootFS"]["Layers"] == json.loads(image.config)["rootfs"]["diff_ids"]


def test_search_lists_the_registrys_matching_repositories(berth, registry):
    for repo in ("team/web", "team/webcache", "team/db"):
        berth("tag", berth.image, f"{registry}/{repo}:v1", check=True)
        berth("push", "-q", f"{registry}/{repo}:v1", check=True)
    lines = berth("search", f"{registry}/web", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    names = sorted(line.split()[0] for line in lines[1:])
    assert names == [f"{registry}/team/web", f"{registry}/team/webcache"]
    assert berth("search", "--limit", "1", "--format", "{{.Name}}", f"{registry}/web", check=True).stdout.count("\n") == 1
    assert berth("search", "--filter", "is-official=true", "--format", "{{.Name}}", f"{registry}/web",
                 check=True).stdout == ""
    bad = berth("search", "--limit", "0", f"{registry}/web")
    assert bad.returncode == 125 and bad.stderr.strip() == "Error: Limit 0 is outside the range of [1, 100]"


# -- several layers: filled side by side, stacked in order ------------------------------


def _layered_image(server, base_tar: bytes, lie_about: int | None = None) -> str:
    """A 4-layer image on `server` as lie/layers:1: busybox, then /a and /b,
    then a whiteout of /a and a new /b, then /c. `lie_about`: that layer's
    diff_id in the config is wrong."""
    tars = [base_tar, tar_of({"a": b"first a\n", "b": b"first b\n", "pad": os.urandom(3 << 20)}),
            tar_of({".wh.a": b"", "b": b"second b\n"}), tar_of({"c": b"third c\n"})]
    blobs = [gzip.compress(t, mtime=0) for t in tars]
    diff_ids = [sha(t) for t in tars]
    if lie_about is not None:
        diff_ids[lie_about] = sha(b"not this layer")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b),
                    "size": len(b)} for b in blobs]}).encode()
    base = "/v2/lie/layers"
    server.routes.update({("GET", "/v2/"): (200, {}, b"{}"),
                          ("GET", f"{base}/manifests/1"): (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, manifest),
                          ("GET", f"{base}/blobs/{sha(config)}"): (200, {}, config)})
    for b in blobs:
        server.routes[("GET", f"{base}/blobs/{sha(b)}")] = (200, {}, b)
    return f"{server.location}/lie/layers:1"


def _layer_state(b) -> tuple[int, list[str]]:
    """Rows of the layers table, and the overlay2 layer directories (not l/)."""
    with sqlite3.connect(b.root / "berth.db") as db:
        rows = db.execute("SELECT count(*) FROM layers").fetchone()[0]
    home = b.root / "overlay2"
    return rows, sorted(p.name for p in home.iterdir() if p.name != "l") if home.exists() else []


@pytest.mark.parametrize("driver", ["overlay2", "vfs"])  # side by side; in chain order (vfs copies the parent)
def test_layers_filled_side_by_side_stack_in_order(other, fake_server_factory, rootfs_tar, driver):
    name = _layered_image(fake_server_factory(), Path(rootfs_tar).read_bytes())
    other("-s", driver, "pull", name, check=True, timeout=60)
    res = other("-s", driver, "run", "--rm", "--network", "none", name, "sh", "-c", "ls /a 2>&1; cat /b /c",
                check=True)
    assert res.stdout == "ls: /a: No such file or directory\nsecond b\nthird c\n"
    with sqlite3.connect(other.root / "berth.db") as db:
        assert db.execute("SELECT count(*) FROM layers WHERE driver = ?", (driver,)).fetchone()[0] == 4


def test_a_layer_that_is_not_what_the_config_says_leaves_no_layer_behind(other, fake_server_factory, rootfs_tar):
    name = _layered_image(fake_server_factory(), Path(rootfs_tar).read_bytes(), lie_about=2)
    res = other("pull", name, timeout=60)
    assert res.returncode == 1 and "uncompressed content is" in res.stderr and len(res.stderr.splitlines()) == 1
    assert _layer_state(other) == (0, [])
    assert image_rows(other) == 0 and blob_files(other) == []


# -- mirrors and progress -----------------------------------------------------------------


def test_docker_hub_names_are_pulled_from_the_first_mirror_that_answers(berth, other, registry, tmp_path):
    """No test may reach Docker Hub: a working mirror answers before berth would try it."""
    berth("tag", berth.image, f"{registry}/library/mirrored:1", check=True)
    berth("push", f"{registry}/library/mirrored:1", check=True)
    dead = free_port()  # nothing listens there: the first mirror fails, the second serves
    with open(other.config, "a") as f:
        f.write(f'\n[registries.mirrors]\n"docker.io" = ["127.0.0.1:{dead}", "http://{registry}"]\n')
    other("pull", "mirrored:1", check=True, timeout=60)
    listed = other("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert listed == ["mirrored:1"]
    res = other("run", "--rm", "--network", "none", "mirrored:1", "echo", "from-the-mirror", check=True)
    assert res.stdout == "from-the-mirror\n"


def test_pull_on_a_terminal_draws_progress_bars(berth, other, proxy, tmp_path):
    import pty
    import select

    path = tmp_path / "two-mb.tar"
    path.write_bytes(tar_of({"random.bin": os.urandom(2 << 20)}))
    berth("import", str(path), f"{proxy.upstream[0]}:{proxy.upstream[1]}/slow/bar:1", check=True)
    berth("push", f"{proxy.upstream[0]}:{proxy.upstream[1]}/slow/bar:1", check=True)
    proxy.mode = "slow"  # about 3 MB/s: the bar is redrawn several times
    master, slave = pty.openpty()
    proc = other.popen("pull", f"{proxy.address}/slow/bar:1", stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        while proc.poll() is None or select.select([master], [], [], 0.2)[0]:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:  # the pty closed with the process
                    break
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = out.decode(errors="replace")
    assert "\x1b[" in text  # lines redrawn in place
    bars = [line for line in text.splitlines() if ": Downloading [" in line]
    assert bars and all(line.rstrip().endswith("/s") for line in bars), text[-2000:]
    assert "MB/" in text and ": Pull complete" in text
