"""Prometheus metrics, fed from the event journal and from cgroups.

`berth metrics serve` is a long-lived scrape target: every scrape reads the
journal lines appended since the last one (so events made by any berth
process are counted) and the cgroup statistics of running containers.
prometheus_client is imported here only, and this module only by the
metrics command.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class JournalCounter:
    """Counts events by (type, action), reading the journal incrementally."""

    def __init__(self, path):
        self.path = path
        self.counts: Counter = Counter()
        self._offset = 0
        self._inode = None
        self._lock = threading.Lock()
        self._count_file(self.path.with_name(self.path.name + ".1"), 0)

    def _count_file(self, path, offset: int) -> int:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return offset
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            event = json.loads(line)
            self.counts[(event["Type"], event["Action"].split(":", 1)[0])] += 1
        return offset + len(complete)

    def update(self) -> Counter:
        with self._lock:
            try:
                inode = os.stat(self.path).st_ino
            except FileNotFoundError:
                return self.counts
            if inode != self._inode:  # rotated: the old file is now .1; finish it
                if self._inode is not None:
                    self._count_file(self.path.with_name(self.path.name + ".1"), self._offset)
                self._inode, self._offset = inode, 0
            self._offset = self._count_file(self.path, self._offset)
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
        memory = GaugeMetricFamily("berth_container_memory_usage_bytes", "Memory used by a running container",
                                   labels=["id", "name"])
        cpu = CounterMetricFamily("berth_container_cpu_seconds", "CPU time used by a running container",
                                  labels=["id", "name"])
        pids = GaugeMetricFamily("berth_container_pids", "Processes in a running container", labels=["id", "name"])
        by_state: Counter = Counter()
        for row in store.all("SELECT id, name, state FROM containers"):
            state = json.loads(row["state"])
            status = state.get("Status", "created")
            by_state[status] += 1
            if status in ("running", "paused") and state.get("Pid"):
                stats = _cgroup_stats(state["Pid"])
                if stats is not None:
                    labels = [row["id"][:12], row["name"]]
                    memory.add_metric(labels, stats.memory_usage)
                    cpu.add_metric(labels, stats.cpu_usage_ns / 1e9)
                    pids.add_metric(labels, stats.pids)
        for status in ("created", "running", "paused", "restarting", "exited", "dead"):
            states.add_metric([status], by_state.get(status, 0))
        yield states
        yield memory
        yield cpu
        yield pids


def _cgroup_stats(pid: int):
    from berth.core.runtime.cgroups import Cgroup

    try:
        group = Cgroup.of_pid(pid)
        return group.stats() if group else None
    except (OSError, ValueError):
        return None  # it exited between the query and the read


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
