"""Layers being written: marked until their row is recorded.

A pull or commit creates a layer in the storage driver, fills it, and only
then records its row; killed in between, it left a directory no row names,
forever. Now each layer is marked first: a file
``<root>/incomplete/<driver>/<cache id>`` holding the writer's PID and start
time, removed once the row is in (or the layer discarded). `sweep` -- run
when a command first opens the storage driver -- removes the layers whose
writer is gone and which no row records.
"""

from __future__ import annotations

import os

from berth.core.runtime.proc import start_time


def _dir(engine, driver_name: str | None = None):
    return engine.root / "incomplete" / (driver_name or engine.storage_driver_name)


def mark(engine, cache_id: str, chain_id: str) -> None:
    """Layer `cache_id` (of chain `chain_id`) of the current driver is being written by this process."""
    directory = _dir(engine)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pid = os.getpid()
    (directory / cache_id).write_text(f"{pid} {start_time(pid)} {chain_id}\n")


def unmark(engine, cache_id: str) -> None:
    try:
        os.unlink(_dir(engine) / cache_id)
    except FileNotFoundError:
        pass


def writer_alive(path) -> bool:
    """Whether the process that wrote marker `path` still runs (PIDs are reused: its start time must match)."""
    try:
        pid, started = path.read_text().split()[:2]
        return start_time(int(pid)) == int(started)
    except (OSError, ValueError):
        return False


def pending(engine, driver_name: str | None = None) -> list:
    """The markers of a driver, as paths."""
    try:
        return sorted(_dir(engine, driver_name).iterdir())
    except FileNotFoundError:
        return []


def sweep(engine, driver) -> list[str]:
    """Remove the layers of `driver` whose writer died before recording them; their cache IDs."""
    markers = pending(engine)
    if not markers:
        return []
    removed = []
    for marker in markers:
        if writer_alive(marker):
            continue
        cache_id = marker.name
        if engine.store.one("SELECT 1 FROM layers WHERE cache_id = ?", (cache_id,)) is None:
            try:
                driver.remove(cache_id)
            except Exception:  # noqa: BLE001 - a driver's failure leaves the marker for the next command
                continue
            removed.append(cache_id)
            fields = marker.read_text().split()
            chain_id = fields[2] if len(fields) > 2 else ""
            if chain_id.startswith("sha256:") and engine.store.one(
                    "SELECT 1 FROM layers WHERE chain_id = ?", (chain_id,)) is None:
                engine.forget_lock(f"layer-{chain_id.split(':', 1)[1]}", held=False)
        try:
            os.unlink(marker)
        except FileNotFoundError:
            pass
    return removed
