"""Prometheus scrapes `berth metrics serve`: events from other processes, counts."""

import socket
import subprocess
import time
import urllib.request

import pytest
from harness import BERTH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def metrics_server(berth):
    port = free_port()
    proc = subprocess.Popen(BERTH + berth.args() + ["metrics", "serve", "--address", f"127.0.0.1:{port}"],
                            env=berth.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def scrape(url: str) -> dict[str, float]:
    out = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_scrape_counts_events_made_by_other_processes(berth, metrics_server):
    before = scrape(metrics_server)
    assert before["berth_images"] == 0
    berth("import", str(berth.rootfs), "m1", check=True)
    berth("tag", "m1", "m2", check=True)
    after = scrape(metrics_server)
    assert after['berth_events_total{action="import",type="image"}'] == 1
    assert after['berth_events_total{action="tag",type="image"}'] == 1
    assert after["berth_images"] == 1
    assert after['berth_containers{state="running"}'] == 0


def test_address_in_use_is_one_line(berth):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = berth("metrics", "serve", "--address", f"127.0.0.1:{port}", timeout=20)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: listen tcp 127.0.0.1:{port}: bind: address already in use"


def test_show_prints_one_scrape(berth):
    berth("import", str(berth.rootfs), "m1", check=True)
    out = berth("metrics", "show", check=True).stdout
    assert "berth_images 1.0" in out
