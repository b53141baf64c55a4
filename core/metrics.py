"""Prometheus metrics, fed from the event journal and from cgroups.

`berth metrics serve` is a long-lived scrape target: every scrape reads the
journal lines appended since the last one (so events made by any berth
process are counted) and the cgroup statistics of running containers.
prometheus_client is imported here only, and this module only by the
metrics command.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from berth.core.runtime.cgroups import read_stats


class JournalCounter:
    """Counts events by (type, action), reading the journal incrementally."""

    def __init__(self, path):
        from berth.core.plumbing.events import JournalTail

        self.counts: Counter = Counter()
        self._lock = threading.Lock()
        self._count(JournalTail(path.with_name(path.name + ".1")).lines())  # the previous generation, once
        self._tail = JournalTail(path)

    def _count(self, lines) -> None:
        for line in lines:
            event = json.loads(line)
            self.counts[(event["Type"], event["Action"].split(":", 1)[0])] += 1

    def update(self) -> Counter:
        with self._lock:
            self._count(self._tail.lines())
            return self.counts


class BerthCollector:
    def __init__(self, engine):
        self.engine = engine
        self.events = JournalCounter(engine.journal.path)

    def collect(self):
        events = CounterMetricFamily("berth_events", "Events berth emitted, by type and action",
                                     labels=["type", "action"])
        for (type_, action), n in sorted(self.events.update().items()):
            events.add_metric([type_, action], n)
        yield events

        store = self.engine.store
        images = GaugeMetricFamily("berth_images", "Images in the store")
        images.add_metric([], store.one("SELECT COUNT(*) FROM images")[0])
        yield images

        states = GaugeMetricFamily("berth_containers", "Containers by state", labels=["state"])
        labels_ = ["id", "name", "image"]
        families = {  # name -> (family, the Stats figure); the figures `berth stats` shows
            "memory": (GaugeMetricFamily("berth_container_memory_usage_bytes", "Memory used by a running container",
                                         labels=labels_), lambda s: s.memory_usage),
            "limit": (GaugeMetricFamily("berth_container_memory_limit_bytes",
                                        "Memory limit of a running container (absent when unlimited)",
                                        labels=labels_), lambda s: s.memory_limit),
            "cpu": (CounterMetricFamily("berth_container_cpu_seconds", "CPU time used by a running container",
                                        labels=labels_), lambda s: s.cpu_usage_ns / 1e9),
            "pids": (GaugeMetricFamily("berth_container_pids", "Processes in a running container", labels=labels_),
                     lambda s: s.pids),
            "rx": (CounterMetricFamily("berth_container_network_receive_bytes",
                                       "Bytes a running container received (every interface but lo)",
                                       labels=labels_), lambda s: s.net_rx),
            "tx": (CounterMetricFamily("berth_container_network_transmit_bytes",
                                       "Bytes a running container sent (every interface but lo)",
                                       labels=labels_), lambda s: s.net_tx),
            "read": (CounterMetricFamily("berth_container_block_read_bytes", "Bytes a running container read from block devices",
                                         labels=labels_), lambda s: s.block_read),
            "write": (CounterMetricFamily("berth_container_block_write_bytes",
                                          "Bytes a running container wrote to block devices",
                                          labels=labels_), lambda s: s.block_write),
        }
        by_state: Counter = Counter()
        for row in store.all("SELECT id, name, image, state FROM containers"):
            state = json.loads(row["state"])
            status = state.get("Status", "created")
            by_state[status] += 1
            if status in ("running", "paused") and state.get("Pid"):
                stats = read_stats(state["Pid"])
                if stats is not None:
                    labels = [row["id"][:12], row["name"], row["image"]]
                    for family, figure in families.values():
                        value = figure(stats)
                        if value is not None:
                            family.add_metric(labels, value)
        for status in ("created", "running", "paused", "restarting", "exited", "dead"):
            states.add_metric([status], by_state.get(status, 0))
        yield states
        for family, _ in families.values():
            yield family


class PluginCollector:
    """A collector a plugin registered (hook register_metrics): one that
    raises is left out of that scrape, logged, and the others are served."""

    def __init__(self, collector):
        self.collector = collector

    def collect(self):
        try:
            families = list(self.collector.collect())
        except Exception as exc:  # a plugin must not break the scrape
            from berth.core.plumbing.log import get_logger

            get_logger("berth.metrics").warning("plugin collector failed", collector=repr(self.collector),
                                                error=str(exc))
            return []
        return families


def registry(engine):
    """berth's own collector and those the plugins register (hook register_metrics)."""
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(BerthCollector(engine))
    engine.hook("register_metrics", register=lambda collector: reg.register(PluginCollector(collector)))
    return reg


def render(engine) -> bytes:
    """The exposition text of one scrape."""
    from prometheus_client import generate_latest

    return generate_latest(registry(engine))


def serve(engine, address: str):
    """Serve /metrics on `address` (host:port) until interrupted; returns the server."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client import make_wsgi_app

    host, _, port = address.rpartition(":")

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):  # scrapes are not worth a line each
            pass

    return make_server(host.strip("[]") or "127.0.0.1", int(port), make_wsgi_app(registry(engine)),
                       handler_class=QuietHandler)
