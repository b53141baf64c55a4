"""A host whose /etc/resolv.conf names only systemd-resolved's stub 127.0.0.53 (Ubuntu's
default): containers get the upstream servers of /run/systemd/resolve/resolv.conf, as
Docker's (issue #11). The host files are replaced in a private mount namespace only."""

from __future__ import annotations

import os
import shlex
import subprocess

from harness import BERTH

from berth.core.networks.network import host_resolv_text


def test_host_resolv_text_follows_the_systemd_stub(tmp_path):
    etc, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.0.2.10\nsearch example.test\n")
    etc.write_text("# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.test\n")
    assert host_resolv_text(str(etc), str(upstream)) == upstream.read_text()
    assert host_resolv_text(str(etc), str(tmp_path / "missing")) == etc.read_text()
    etc.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\n")  # not the stub alone: as it is
    assert host_resolv_text(str(etc), str(upstream)) == etc.read_text()


def test_a_container_gets_systemd_resolveds_upstream_servers(berth, tmp_path):
    berth.image  # noqa: B018 - imported before the namespace trick
    stub, upstream = tmp_path / "stub.conf", tmp_path / "upstream"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    upstream.mkdir()
    (upstream / "resolv.conf").write_text("nameserver 192.0.2.10\nnameserver 192.0.2.11\n")
    made_run_systemd = not os.path.exists("/run/systemd")
    os.makedirs("/run/systemd", exist_ok=True)
    try:
        command = " ".join(shlex.quote(a) for a in BERTH + berth.args() + ["run", "--rm", berth.image, "cat",
                                                                          "/etc/resolv.conf"])
        script = (f"mount --make-rprivate / && mount --bind {stub} /etc/resolv.conf && "
                  f"mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/resolve && "
                  f"cp {upstream / 'resolv.conf'} /run/systemd/resolve/resolv.conf && exec {command}")
        p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=berth.env,
                           timeout=60)
    finally:
        if made_run_systemd:
            os.rmdir("/run/systemd")
    assert p.returncode == 0, p.stderr
    servers = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("nameserver")]
    assert servers == ["192.0.2.10", "192.0.2.11"], p.stdout
