"""Hostile and broken registries (issue #11): small HTTP servers on 127.0.0.1,
written here on raw sockets so they can misbehave exactly: a blob with no
end, a manifest trickled a byte at a time, a server that answers nothing.
Also a config blob damaged in berth's own content store."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from berth.testing.registries import OCI_MANIFEST, make_image


class HostileServer:
    """An HTTP/1.1 server on 127.0.0.1 whose answer to each GET/HEAD is `handler(method, path, conn)`:
    the handler writes whatever it likes on the raw socket. `sent[path]` counts body bytes it wrote."""

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.location = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        self.sent: dict[str, int] = {}
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as rfile:
                while not self.stopped.is_set():
                    line = rfile.readline()
                    if not line:
                        return
                    method, path, _ = line.decode().split(" ", 2)
                    while rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    if not self.handler(self, method, path, conn):
                        return
        except OSError:
            pass

    def send(self, conn, status: int, headers: dict, body: bytes = b"", path: str = "") -> None:
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        conn.sendall(head.encode() + body)
        self.sent[path] = self.sent.get(path, 0) + len(body)

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def hostile():
    servers = []

    def make(handler):
        servers.append(HostileServer(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def serving(image, blob_handler=None, manifest_handler=None):
    """A handler serving `image` as repository "x", tag "latest", except for the overridden parts."""

    def handler(server, method, path, conn):
        if path == "/v2/":
            server.send(conn, 200, {"Content-Length": "2"}, b"{}")
            return True
        if "/manifests/" in path:
            if manifest_handler:
                return manifest_handler(server, method, path, conn)
            body = b"" if method == "HEAD" else image.manifest
            server.send(conn, 200, {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(image.manifest))}, body)
            return True
        digest = path.rsplit("/", 1)[1]
        if digest == image.layer_digest and blob_handler:
            return blob_handler(server, method, path, conn)
        data = image.blobs.get(digest)
        if data is None:
            server.send(conn, 404, {"Content-Length": "0"})
        else:
            server.send(conn, 200, {"Content-Length": str(len(data))}, b"" if method == "HEAD" else data, path)
        return True

    return handler


def configure(berth, **registries) -> None:
    lines = "".join(f"{k} = {v}\n" for k, v in registries.items())
    berth.config.write_text(berth.config.read_text() + f"[registries]\n{lines}")


def stored_blobs(berth) -> list[str]:
    blobs = berth.root / "blobs" / "sha256"
    return sorted(p.name for p in blobs.iterdir()) if blobs.exists() else []


def test_a_blob_with_no_end_is_cut_at_its_declared_size(berth, hostile):
    image = make_image(layer_size=20000)

    def endless(server, method, path, conn):
        server.send(conn, 200, {"Connection": "close"}, b"", path)  # no Content-Length: the body ends at EOF
        chunk = b"\0" * 65536
        while not server.stopped.is_set():
            conn.sendall(chunk)
            server.sent[path] = server.sent.get(path, 0) + len(chunk)
        return False

    server = hostile(serving(image, blob_handler=endless))
    started = time.monotonic()
    proc = berth("pull", f"{server.location}/x:latest", timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert f"more than the declared {len(image.layer)} bytes" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert took < 15, f"the pull went on for {took:.1f} s"
    # berth stopped reading at once: what the server got out is its socket buffers' worth, not gigabytes
    sent = server.sent[f"/v2/x/blobs/{image.layer_digest}"]
    assert sent < 64 << 20, f"the server sent {sent} bytes before berth hung up"
    assert stored_blobs(berth) == []
    assert berth("images", "-q").stdout.strip() == ""


def test_a_manifest_trickled_a_byte_at_a_time_meets_the_request_deadline(berth, hostile):
    image = make_image()

    def trickle(server, method, path, conn):
        server.send(conn, 200, {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(image.manifest))})
        for byte in image.manifest:  # a byte every 0.3 s: never idle for long, never done
            if server.stopped.wait(0.3):
                break
            conn.sendall(bytes([byte]))
        return False

    server = hostile(serving(image, manifest_handler=trickle))
    configure(berth, idle_timeout=1, request_timeout=2)
    started = time.monotonic()
    proc = berth("pull", f"{server.location}/x:latest", timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert f"registry {server.location} did not complete GET" in proc.stderr
    assert "within 2 seconds (registries.request_timeout)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert took < 10, f"the pull went on for {took:.1f} s"


def test_a_trickled_blob_meets_the_request_deadline(berth, hostile):
    image = make_image(layer_size=20000)

    def trickle(server, method, path, conn):
        server.send(conn, 200, {"Content-Length": str(len(image.layer))})
        for i in range(len(image.layer)):
            if server.stopped.wait(0.2):
                break
            conn.sendall(image.layer[i:i + 1])
        return False

    server = hostile(serving(image, blob_handler=trickle))
    configure(berth, idle_timeout=1, request_timeout=2)
    started = time.monotonic()
    proc = berth("pull", f"{server.location}/x:latest", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"registry {server.location} did not complete GET" in proc.stderr
    assert time.monotonic() - started < 10
    assert stored_blobs(berth) == []


def test_a_silent_server_meets_the_idle_timeout(berth, hostile):
    def silent(server, method, path, conn):
        server.stopped.wait(30)  # reads the request, answers nothing
        return False

    server = hostile(silent)
    configure(berth, idle_timeout=1, request_timeout=20)
    started = time.monotonic()
    proc = berth("pull", f"{server.location}/x:latest", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"registry {server.location} sent nothing for 1 seconds" in proc.stderr
    assert "(registries.idle_timeout)" in proc.stderr
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("value", ["0", '"soon"', "-3"])
def test_a_bad_timeout_in_the_configuration_is_one_line(berth, hostile, value):
    server = hostile(serving(make_image()))
    configure(berth, idle_timeout=value)
    proc = berth("pull", f"{server.location}/x:latest")
    assert proc.returncode == 125, proc.stderr
    assert proc.stderr == ("Error: configuration: registries.idle_timeout must be a positive number of seconds, "
                           f"not {json.loads(value)!r}\n")


def test_a_damaged_config_blob_is_named_not_parsed(berth):
    berth.image
    image_id = berth("images", "-q", "--no-trunc").stdout.split()[0]
    blob = berth.root / "blobs" / "sha256" / image_id.split(":", 1)[1]
    blob.write_bytes(b'{"damaged": tru')
    for argv in (["run", "--rm", "--network", "none", berth.image, "true"], ["save", "-o", "/dev/null", berth.image],
                 ["history", berth.image], ["image", "inspect", berth.image]):
        proc = berth(*argv)
        assert proc.returncode != 0, argv
        assert f"blob {image_id} in the content store is damaged" in proc.stderr, (argv, proc.stderr)
        assert "JSON" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    listed = berth("images")
    assert listed.returncode == 0 and "is damaged" in listed.stderr
    assert berth("rmi", "-f", berth.image).returncode == 0
    assert berth("images", "-q").stdout.strip() == ""
