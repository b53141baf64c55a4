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


def test_container_figures_are_the_cgroups_as_stats_reads_them(berth, metrics_server):
    berth("import", str(berth.rootfs), "m1", check=True)
    berth("run", "-d", "--name", "watched", "-m", "32m", "m1", "sleep", "30", check=True)
    cid = berth("inspect", "--format", "{{.Id}}", "watched", check=True).stdout.strip()[:12]
    figures = scrape(metrics_server)
    labels = f'{{id="{cid}",image="m1",name="watched"}}'
    assert figures["berth_container_memory_limit_bytes" + labels] == 32 * 1024 * 1024
    assert figures["berth_container_memory_usage_bytes" + labels] > 0
    assert figures["berth_container_pids" + labels] == 1
    for name in ("network_receive_bytes", "network_transmit_bytes", "block_read_bytes", "block_write_bytes"):
        assert f"berth_container_{name}_total" + labels in figures, name
    shown = berth("stats", "--no-stream", "--format", "{{.MemUsage}}", "watched", check=True).stdout.split(" / ")[1]
    assert shown.strip() == "32.00MiB"
    berth("rm", "-f", "watched", check=True)
