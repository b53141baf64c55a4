"""Real and scripted registries on 127.0.0.1, for the registry suite and any test.

- `RegistryServer(workdir, mode)`: Debian's ``docker-registry serve`` (the
  distribution project's registry) on 127.0.0.1:<free port>, storage in
  `workdir`; mode "open", "htpasswd" (basic auth, user USER / PASSWORD made
  with ``htpasswd -Bbn``) or "token" (bearer tokens from a `TokenServer`
  this module runs: a self-signed RSA key made with ``openssl``, JWTs signed
  RS256 with the certificate in the ``x5c`` header, as distribution's token
  auth verifies them). Readiness is polled on /v2/; `stop()` ends the
  process and removes its files.
- `FakeServer`: an http.server on a 127.0.0.x address whose answers the test
  scripts and which records every request (method, path, headers): the
  "lying registry" and the storage host a blob is redirected to.
- `make_image()`: a tiny image built by hand (a gzip layer tar, a config, an
  OCI or Docker schema2 manifest) to push.
- pytest fixtures: `registry_open`, `registry_htpasswd`, `registry_token`
  (module-scoped servers), `fake_server_factory` (per test); the kit's
  pytest plugin (berth.testing.plugin) provides them to every test.

Everything is stopped and removed on teardown, even on failure. Traffic
goes to 127.0.0.0/8 only.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from berth.core.oci.mediatypes import (  # one definition of each media type, berth's own
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
)

USER = "berthuser"
PASSWORD = "s3cret-pass"
SERVICE = "berth-test-registry"
ISSUER = "berth-test-issuer"

OCI_LAYER_GZIP = OCI_LAYER + "+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# a tiny image
# --------------------------------------------------------------------------


class Image:
    """Blobs and manifest of a one-layer image; `blobs` maps digest -> bytes."""

    def __init__(self, layer: bytes, config: bytes, manifest: bytes, media_type: str):
        self.layer = layer
        self.config = config
        self.manifest = manifest
        self.media_type = media_type
        self.blobs = {sha256(layer): layer, sha256(config): config}
        self.layer_digest = sha256(layer)
        self.config_digest = sha256(config)
        self.digest = sha256(manifest)


def make_image(text: str = "hello", docker: bool = False, layer_size: int = 0) -> Image:
    """A one-layer image holding /hello.txt (plus `layer_size` random bytes in /pad)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files = [("hello.txt", text.encode())]
        if layer_size:
            files.append(("pad", os.urandom(layer_size)))
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o644
            tar.addfile(info, io.BytesIO(data))
    diff_id = sha256(raw.getvalue())
    layer = gzip.compress(raw.getvalue(), mtime=0)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER_GZIP, "digest": sha256(layer),
                    "size": len(layer)}],
    }, indent=3).encode()
    return Image(layer, config, manifest, media_type)


# --------------------------------------------------------------------------
# token server (for distribution's "token" auth)
# --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues JWTs for the registry; USER/PASSWORD get every action asked for,
    anonymous requests get none. Records each request's (scopes, user)."""

    def __init__(self, workdir: Path, lifetime: int = 300):
        self.workdir = Path(workdir)
        self.key = self.workdir / "token.key"
        self.cert = self.workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=berth-test-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.lifetime = lifetime
        self.requests: list[tuple[list[str], str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                user = None
                header = self.headers.get("Authorization") or ""
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if (user, password) != (USER, PASSWORD):
                        server.requests.append((query.get("scope", []), "bad:" + user))
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                scopes = query.get("scope", [])
                server.requests.append((scopes, user))
                body = json.dumps({"token": server.sign(user, scopes), "expires_in": server.lifetime}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def sign(self, user: str | None, scopes: list[str]) -> str:
        access = []
        if user:
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + self.lifetime, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return signing_input + "." + _b64url(signature)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------
# the real registry
# --------------------------------------------------------------------------


class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1; `location` is "127.0.0.1:PORT"."""

    def __init__(self, workdir: Path, mode: str = "open"):
        assert mode in ("open", "htpasswd", "token"), mode
        self.workdir = Path(workdir)
        self.mode = mode
        self.proc: subprocess.Popen | None = None
        self.token_server: TokenServer | None = None
        self.port = 0

    @property
    def location(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.location}"

    def _config(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'storage'}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {os.urandom(16).hex()}",
        ]
        if self.mode == "htpasswd":
            line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                                  text=True).stdout.strip()
            (self.workdir / "htpasswd").write_text(line + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: berth-test", f"    path: {self.workdir / 'htpasswd'}"]
        elif self.mode == "token":
            if self.token_server is None:
                self.token_server = TokenServer(self.workdir)
            lines += ["auth:", "  token:", f"    realm: {self.token_server.realm}", f"    service: {SERVICE}",
                      f"    issuer: {ISSUER}", f"    rootcertbundle: {self.token_server.cert}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "RegistryServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            self.port = free_port()
            config = self.workdir / "config.yml"
            config.write_text(self._config())
            log = open(self.workdir / "registry.log", "ab")
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            if self._wait_ready():
                return self
            self._kill()
        raise RuntimeError(f"docker-registry did not start: {(self.workdir / 'registry.log').read_text()[-2000:]}")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1).close()
                return True
            except urllib.error.HTTPError:
                return True  # 401: up, wants auth
            except OSError:
                time.sleep(0.05)
        return False

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self._kill()
        if self.token_server:
            self.token_server.stop()
            self.token_server = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# a scripted server: the lying registry, the redirect target
# --------------------------------------------------------------------------


class FakeServer:
    """An HTTP server on `host` answering from `routes`, recording every request.

    ``routes[(method, path)] = (status, headers, body)`` or a callable
    ``(handler) -> (status, headers, body)``; the path includes the query.
    A header set to None is left out (``"Content-Length": None``: the body
    ends when the connection closes).
    Unknown routes get 404 with a distribution-style error. `requests` holds
    ``(method, path, headers-dict)``.
    """

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict = {}
        self.requests: list[tuple[str, str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, dict(self.headers)))
                route = server.routes.get((self.command, self.path))
                if route is None:
                    path_only = self.path.split("?", 1)[0]
                    route = server.routes.get((self.command, path_only))
                if route is None:
                    route = (404, {"Content-Type": "application/json"},
                             b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}')
                if callable(route):
                    route = route(self)
                status, headers, body = route
                self.send_response(status)
                for k, v in headers.items():
                    if v is not None:  # None: leave the header out
                        self.send_header(k, v)
                if not any(k.lower() == "content-length" for k in headers):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self.location = f"{host}:{self.port}"
        self.url = f"http://{self.location}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------


def _server_fixture(mode: str):
    @pytest.fixture(scope="module")
    def fixture():
        server = RegistryServer(Path(tempfile.mkdtemp(prefix=f"berth-registry-{mode}-")), mode)
        try:
            server.start()
            yield server
        finally:
            server.stop()

    return fixture


registry_open = _server_fixture("open")
registry_htpasswd = _server_fixture("htpasswd")
registry_token = _server_fixture("token")


@pytest.fixture
def fake_server_factory():
    """``make(host="127.0.0.1") -> FakeServer``; all stopped at teardown."""
    servers: list[FakeServer] = []

    def make(host: str = "127.0.0.1") -> FakeServer:
        server = FakeServer(host)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
