"""The ``docker`` registry driver against a real registry (Debian's docker-registry
on 127.0.0.1: open, htpasswd basic auth, token auth with our own token server),
scripted servers for redirects, and skopeo reading what berth pushed."""

from __future__ import annotations

import base64
import io
import json
import secrets
import subprocess

import pytest

from berth.core.config import load as load_config
from berth.core.errors import NotFound, RegistryError, Unauthorized
from berth.core.oci import credentials
from berth.plugins.registry.distribution import DistributionRegistry
from berth.testing.registries import OCI_MANIFEST, PASSWORD, USER, make_image, sha256

ACCEPT = [OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"]


class Spy(DistributionRegistry):
    """The real driver, recording each HTTP request it sends (method, URL, headers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, str, dict]] = []

    def _send(self, method, url, headers, body=None):
        self.sent.append((method, url, dict(headers)))
        return super()._send(method, url, headers, body)


def driver(server, cls=DistributionRegistry, **options):
    return cls(server.location, {"insecure": True, **options})


def new_repo() -> str:
    return f"it/bt{secrets.token_hex(4)}"


def push(reg, repo, image, tag="v1") -> str:
    for digest, data in image.blobs.items():
        reg.put_blob(repo, digest, len(data), io.BytesIO(data))
    return reg.put_manifest(repo, tag, image.manifest, image.media_type)


# --------------------------------------------------------------------------
# uploads and listing
# --------------------------------------------------------------------------


def test_chunked_upload(registry_open):
    reg = driver(registry_open, Spy, chunk_size=1000)
    repo = new_repo()
    image = make_image(layer_size=4500)
    assert len(image.layer) > 4000
    push(reg, repo, image)
    patches = [s for s in reg.sent if s[0] == "PATCH"]
    assert len(patches) == -(-len(image.layer) // 1000)  # one PATCH per chunk
    assert reg.get_blob(repo, image.layer_digest).read() == image.layer
    assert reg.get_manifest(repo, "v1", ACCEPT)[0] == image.manifest


def test_list_tags_follows_pagination(fake_server_factory):
    """docker-registry 2.8 ignores ``n`` for tags (it pages the catalog, below): a scripted server pages them."""
    server = fake_server_factory()
    server.routes[("GET", "/v2/r/tags/list?n=1")] = (
        200, {"Link": '</v2/r/tags/list?n=1&last=t1>; rel="next"'}, b'{"name":"r","tags":["t1"]}')
    server.routes[("GET", "/v2/r/tags/list?n=1&last=t1")] = (
        200, {"Link": f'<{server.url}/v2/r/tags/list?n=1&last=t2>; rel="next"'}, b'{"name":"r","tags":["t2"]}')
    server.routes[("GET", "/v2/r/tags/list?n=1&last=t2")] = (200, {}, b'{"name":"r","tags":["t3"]}')
    reg = DistributionRegistry(server.location, {"insecure": True, "page_size": 1})
    assert reg.list_tags("r") == ["t1", "t2", "t3"]


def test_next_page_on_another_host_or_a_loop_is_refused(fake_server_factory):
    server = fake_server_factory()
    server.routes[("GET", "/v2/r/tags/list")] = (
        200, {"Link": '<http://127.0.0.3:1/v2/r/tags/list?last=a>; rel="next"'}, b'{"tags":["a"]}')
    server.routes[("GET", "/v2/_catalog")] = (200, {"Link": '</v2/_catalog>; rel="next"'}, b'{"repositories":["a"]}')
    reg = DistributionRegistry(server.location, {"insecure": True})
    with pytest.raises(RegistryError, match="next page"):
        reg.list_tags("r")
    with pytest.raises(RegistryError, match="next page"):
        reg.catalog()


def test_catalog_and_search_filter_by_term(registry_open):
    reg = driver(registry_open, Spy, page_size=2)
    tag = secrets.token_hex(3)
    for name in (f"search/alpha{tag}", f"search/beta{tag}", f"search/alphabet{tag}"):
        push(reg, name, make_image())
    reg.sent.clear()
    catalog = reg.catalog()
    assert {f"search/alpha{tag}", f"search/beta{tag}"} <= set(catalog)
    assert len(catalog) == len(set(catalog))
    assert len([s for s in reg.sent if "/v2/_catalog" in s[1]]) >= 2  # Link pages followed, n=2
    found = reg.search("alpha", limit=100)
    names = {r["name"] for r in found}
    assert f"{registry_open.location}/search/alpha{tag}" in names
    assert f"{registry_open.location}/search/beta{tag}" not in names
    assert all(set(r) >= {"name", "description", "star_count", "is_official"} for r in found)
    assert len(reg.search("search/", limit=1)) == 1


def test_skopeo_reads_what_berth_pushed(registry_open):
    reg = driver(registry_open)
    repo = new_repo()
    image = make_image("for skopeo", docker=True)
    digest = push(reg, repo, image, "sk")
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry_open.location}/{repo}:sk"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    info = json.loads(out)
    assert info["Digest"] == digest
    assert info["Layers"] == [image.layer_digest]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry_open.location}/{repo}@{digest}"],
                         check=True, capture_output=True, timeout=60).stdout
    assert raw == image.manifest


# --------------------------------------------------------------------------
# basic auth (htpasswd)
# --------------------------------------------------------------------------


def test_basic_login_good_and_bad_password(registry_htpasswd):
    driver(registry_htpasswd, credentials=(USER, PASSWORD)).login()
    with pytest.raises(Unauthorized) as info:
        driver(registry_htpasswd, credentials=(USER, "wrong")).login()
    assert str(info.value) == "unauthorized: incorrect username or password"
    with pytest.raises(Unauthorized, match="^unauthorized: incorrect username or password$"):
        driver(registry_htpasswd).login(USER, "wrong")  # credentials given to login itself


def test_basic_auth_push_pull_and_anonymous_refused(registry_htpasswd):
    reg = driver(registry_htpasswd, credentials=(USER, PASSWORD))
    repo = new_repo()
    image = make_image()
    push(reg, repo, image)
    assert reg.get_manifest(repo, "v1", ACCEPT)[0] == image.manifest
    with pytest.raises(Unauthorized, match="authentication required"):
        driver(registry_htpasswd).get_manifest(repo, "v1", ACCEPT)
    messages = []
    for exc_call in (lambda: driver(registry_htpasswd, credentials=(USER, "wrong")).get_manifest(repo, "v1", ACCEPT),):
        with pytest.raises(Unauthorized) as info:
            exc_call()
        messages.append(str(info.value))
    assert all(PASSWORD not in m and "wrong" not in m for m in messages)


# --------------------------------------------------------------------------
# token auth (distribution's token auth, our token server)
# --------------------------------------------------------------------------


def test_token_flow_push_pull_and_cache(registry_token):
    tokens = registry_token.token_server
    reg = driver(registry_token, credentials=(USER, PASSWORD))
    repo = new_repo()
    image = make_image("token")
    before = len(tokens.requests)
    push(reg, repo, image)
    for _ in range(3):
        assert reg.get_manifest(repo, "v1", ACCEPT)[0] == image.manifest
        assert reg.get_blob(repo, image.layer_digest).read() == image.layer
    asked = tokens.requests[before:]
    assert all(user == USER for _, user in asked)
    assert len(asked) <= 3  # one token per scope, reused until it expires
    assert [f"repository:{repo}:pull,push"] in [scopes for scopes, _ in asked]


def test_token_login_and_anonymous(registry_token):
    driver(registry_token, credentials=(USER, PASSWORD)).login()
    with pytest.raises(Unauthorized, match="^unauthorized: incorrect username or password$"):
        driver(registry_token, credentials=(USER, "wrong")).login()
    # anonymous tokens grant nothing on this registry: refused, not a crash
    with pytest.raises(Unauthorized):
        driver(registry_token).get_manifest(new_repo(), "v1", ACCEPT)


def test_token_expiry_fetches_a_new_token(registry_token):
    tokens = registry_token.token_server
    reg = driver(registry_token, credentials=(USER, PASSWORD))
    repo = new_repo()
    push(reg, repo, make_image())
    reg._tokens.clear()  # as if every token had expired
    before = len(tokens.requests)
    reg.list_tags(repo)
    assert len(tokens.requests) == before + 1


# --------------------------------------------------------------------------
# redirects
# --------------------------------------------------------------------------


def test_redirect_to_another_host_does_not_forward_credentials(fake_server_factory):
    storage = fake_server_factory("127.0.0.2")
    front = fake_server_factory("127.0.0.1")
    data = b"layer bytes kept on a storage host"
    digest = sha256(data)
    storage.routes[("GET", "/blob")] = (200, {"Content-Type": "application/octet-stream"}, data)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def blob(handler):
        if handler.headers.get("Authorization") != basic:
            return 401, {"WWW-Authenticate": 'Basic realm="test"'}, b""
        return 307, {"Location": f"{storage.url}/blob?sig=abc"}, b""

    front.routes[("GET", f"/v2/r/blobs/{digest}")] = blob
    reg = DistributionRegistry(front.location, {"insecure": True, "credentials": (USER, PASSWORD)})
    assert reg.get_blob("r", digest).read() == data
    assert front.requests[-1][2].get("Authorization") == basic  # the registry got them
    assert storage.requests and all("Authorization" not in h for _, _, h in storage.requests)


def test_redirect_loop_is_refused(fake_server_factory):
    server = fake_server_factory()
    digest = sha256(b"x")
    server.routes[("GET", f"/v2/r/blobs/{digest}")] = (302, {"Location": f"/v2/r/blobs/{digest}"}, b"")
    with pytest.raises(RegistryError, match="redirects"):
        DistributionRegistry(server.location, {"insecure": True}).get_blob("r", digest)


# --------------------------------------------------------------------------
# configuration and stored credentials
# --------------------------------------------------------------------------


def test_for_host_uses_config_and_stored_credentials(registry_htpasswd, tmp_path):
    auth_file = tmp_path / "auth.json"
    credentials.store(registry_htpasswd.location, USER, PASSWORD, auth_file)
    reg = DistributionRegistry.for_host(load_config(env={}), registry_htpasswd.location, auth_file=auth_file)
    assert reg.base == registry_htpasswd.url  # 127.0.0.0/8 is insecure by default: plain HTTP
    reg.login()
    repo = new_repo()
    push(reg, repo, make_image())
    with pytest.raises(NotFound, match="manifest unknown"):
        reg.get_manifest(repo, "other", ACCEPT)
    assert PASSWORD not in repr(reg)


def test_stored_credentials_are_read_by_skopeo_too(registry_htpasswd, tmp_path):
    """berth's auth file is Docker's format: skopeo logs in with it."""
    auth_file = tmp_path / "auth.json"
    credentials.store(registry_htpasswd.location, USER, PASSWORD, auth_file)
    reg = driver(registry_htpasswd, credentials=credentials.load(registry_htpasswd.location, auth_file))
    repo = new_repo()
    digest = push(reg, repo, make_image())
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", str(auth_file),
                          f"docker://{registry_htpasswd.location}/{repo}:v1"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out)["Digest"] == digest
