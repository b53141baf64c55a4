"""A `berth system service` of a test's own, and the real clients that talk to it.

`ApiService(berth)` starts the service on a unix socket under the
installation's run directory and waits until `_ping` answers; `stop()`
sends SIGTERM and waits. `docker(...)` runs the docker CLI 28
(/usr/local/bin/docker) against it with DOCKER_HOST; nothing here ever
starts dockerd.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time

DOCKER_20 = "/usr/bin/docker"  # Debian's docker.io 20.10 CLI
# The docker CLI 28 where it is installed (these machines), else Debian's (CI's apt line).
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else DOCKER_20


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class ApiService:
    def __init__(self, berth, *args: str, timeout: str = "0"):
        self.berth = berth
        self.socket = str(berth.runroot / "berth.sock")
        self.host = f"unix://{self.socket}"
        self.proc = berth.popen("system", "service", "-t", timeout, *args, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.stderr_text = ""
        self.env = dict(berth.env, DOCKER_HOST=self.host, DOCKER_CONFIG=str(berth.root.parent / "docker-config"))
        self.env.pop("DOCKER_TLS_VERIFY", None)
        self.env["PATH"] = f"{_no_keychain(berth.root.parent / 'bin')}:{self.env.get('PATH', '/usr/bin:/bin')}"
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            try:
                if self.request("GET", "/_ping")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the service did not answer _ping")
            time.sleep(0.05)

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        """(status, headers, body bytes)."""
        conn = UnixHTTPConnection(self.socket, timeout)
        try:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)):
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body=None, expect: int | None = None):
        status, _, data = self.request(method, path, body)
        if expect is not None:
            assert status == expect, (status, data)
        return status, (json.loads(data) if data.strip() else None)

    def docker(self, *args: str, input=None, timeout: float = 120, cli: str = DOCKER, **kw):
        text = not isinstance(input, bytes)
        return subprocess.run([cli, *args], env=self.env, input=input, capture_output=True, text=text,
                              timeout=timeout, **kw)

    def stop(self) -> int:
        """SIGTERM and wait; the service's stderr is kept in stderr_text."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.proc.stderr.closed:
            self.stderr_text = self.proc.stderr.read().decode(errors="replace")
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        return self.proc.returncode


def _no_keychain(directory) -> str:
    """The docker CLI asks the desktop keychain (docker-credential-secretservice, which needs D-Bus) for
    registry credentials: this one answers that it has none, as an empty keychain does."""
    directory.mkdir(parents=True, exist_ok=True)
    helper = directory / "docker-credential-secretservice"
    helper.write_text("#!/bin/sh\n[ \"$1\" = list ] && { echo '{}'; exit 0; }\n"
                      "echo 'credentials not found in native keychain'; exit 1\n")
    helper.chmod(0o755)
    return str(directory)


def wait_for(predicate, timeout: float = 10, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(every)
