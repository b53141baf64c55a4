"""The berth CLI bound to one temporary installation, for tests and benchmarks.

Import it as `from harness import BERTH, Berth` (tests/ is on sys.path via
the top-level conftest); never `from conftest import ...`, which is
ambiguous once several directories have a conftest.py.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

BERTH = [sys.executable, "-m", "berth.core.cli"]


class Berth:
    """The berth CLI bound to one temporary installation."""

    def __init__(self, base: Path, rootfs: Path, storage_driver: str | None = None):
        self.root = base / "root"
        self.runroot = base / "run"
        self.rootfs = rootfs
        self.storage_driver = storage_driver
        self.env = dict(os.environ, BERTH_AUTH_FILE=str(base / "auth.json"))
        self.env.pop("BERTH_CONFIG", None)
        self._image: str | None = None
        # Networking of its own: a bt<hex> bridge and a random /24, so tests never
        # touch a real installation's berth0 (see cleanup_network).
        self.bridge = f"bt{secrets.token_hex(4)}"
        self.subnet = f"10.{random.randint(200, 249)}.{random.randint(0, 255)}"
        base.mkdir(parents=True, exist_ok=True)
        self.config = base / "berth.toml"
        self.config.write_text(f'[network]\nbridge = "{self.bridge}"\nsubnet = "{self.subnet}.0/24"\n'
                               f'gateway = "{self.subnet}.1"\n')
        self.env["BERTH_CONFIG"] = str(self.config)

    def args(self) -> list[str]:
        a = ["--root", str(self.root), "--runroot", str(self.runroot)]
        if self.storage_driver:
            a += ["--storage-driver", self.storage_driver]
        return a

    def __call__(self, *argv: str, input: bytes | str | None = None, check: bool = False, timeout: float = 60,
                 **kw) -> subprocess.CompletedProcess:
        text = not isinstance(input, bytes)
        proc = subprocess.run(BERTH + self.args() + list(argv), input=input, capture_output=True, text=text,
                              env=self.env, timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"berth {' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(BERTH + self.args() + list(argv), env=self.env, **kw)

    @property
    def image(self) -> str:
        """A busybox image in this installation, imported on first use."""
        if self._image is None:
            self("import", str(self.rootfs), "busybox:latest", check=True)
            self._image = "busybox:latest"
        return self._image

    def cleanup(self) -> None:
        """Stop and remove every container, then unmount what the driver left."""
        if self.root.exists():
            ids = self("ps", "-aq", "--no-trunc").stdout.split()
            if ids:
                self("rm", "-f", *ids, timeout=120)
        subprocess.run(["sh", "-c", f"grep -o ' {self.root}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"],
                       capture_output=True)
        self.cleanup_network()

    def cleanup_network(self) -> None:
        """Remove this installation's bridges, veths and nftables table."""
        if not (self.root / "berth.db").exists():
            return
        code = ("import sys; from berth.core import config; from berth.core.engine import Engine; "
                "e = Engine(config.load({'engine': {'root': sys.argv[1], 'runroot': sys.argv[2]}})); "
                "hasattr(e, 'networks') and e.networks.reset()")
        subprocess.run([sys.executable, "-c", code, str(self.root), str(self.runroot)], env=self.env,
                       capture_output=True, timeout=60)


def inspect(berth: Berth, ref: str) -> dict:
    """`berth container inspect REF`, parsed."""
    import json

    return json.loads(berth("container", "inspect", ref, check=True).stdout)[0]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    """predicate()'s first true value, polled every 50 ms; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def fetch(url: str, timeout: float = 5) -> str:
    """GET `url` (on 127.0.0.1 or a test's own container), retrying while the server starts."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def install_plugin(site: Path, name: str, source: str, version: str = "0.3") -> None:
    """Install plugin `name` into directory `site` as a distribution does: module
    btplug_<name> holding `source`, and a <name>-<version>.dist-info whose entry
    point in group "berth" names it. Put `site` on PYTHONPATH to use it."""
    import textwrap

    site.mkdir(parents=True, exist_ok=True)
    (site / f"btplug_{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[berth]\n{name} = btplug_{name}\n")
