"""`berth system check`: the store against the disk (as `podman system check`).

What it compares, each a `Problem` with the repair `--repair` applies:

- layer directories of the storage driver that no layer or container row
  names (a pull, commit or create killed before its row) -> removed;
- layer rows whose directory is missing -> the row is dropped (the layer is
  extracted again from the content store when an image needs it);
- containers whose writable layer is missing -> the container is removed;
- blobs no image references, and temporary files a killed writer left ->
  deleted (what garbage collection would delete);
- containers marked running whose monitor is gone -> reconciled (the
  process, if any, is killed; the exit is recorded and what it held freed);
- lock files of containers and layers that no longer exist -> deleted.

The check takes the "gc" lock exclusively, as garbage collection does, so
a pull or commit under way (which holds it shared) is never mistaken for
leftovers; incomplete layers whose writer runs are not reported either.
"""

from __future__ import annotations

import fcntl
import os
from collections import namedtuple
from collections.abc import Callable

from berth.core.containers.container import Container, alive
from berth.core.images import incomplete
from berth.core.images.image import chain_ids
from berth.core.plumbing.store import loads


class Problem(namedtuple("Problem", "what repair")):
    """One inconsistency: `what` (a line for the user), `repair()` (makes it consistent)."""

    __slots__ = ()


def check(engine) -> list[Problem]:
    """Every inconsistency between berth's records and the disk, now."""
    problems: list[Problem] = []
    problems += _layers(engine)
    problems += _containers(engine)
    problems += _blobs(engine)
    problems += _locks(engine)
    return problems


def check_and_repair(engine, repair: bool, report: Callable[[str], None]) -> int:
    """Report each problem (and repair it, with `repair`); the number left unrepaired."""
    with engine.lock("gc"):
        problems = check(engine)
        left = 0
        for problem in problems:
            if not repair:
                report(problem.what)
                left += 1
                continue
            try:
                problem.repair()
                report(f"repaired: {problem.what}")
            except Exception as exc:  # noqa: BLE001 - one failed repair must not hide the others
                report(f"not repaired: {problem.what}: {getattr(exc, 'message', None) or exc}")
                left += 1
        return left


# -- layers -------------------------------------------------------------------------------------


def _layers(engine) -> list[Problem]:
    name = engine.storage_driver_name
    driver = engine.storage  # opening it sweeps the incomplete layers of dead writers
    problems = []
    rows = engine.store.all("SELECT chain_id, cache_id FROM layers WHERE driver = ?", (name,))
    containers = {r["id"] for r in engine.store.all("SELECT id FROM containers WHERE driver = ?", (name,))}
    ids = driver.layer_ids()
    if ids is not None:
        known = {r["cache_id"] for r in rows} | containers
        known |= {m.name for m in incomplete.pending(engine) if incomplete.writer_alive(m)}
        for layer_id in ids:
            if layer_id not in known:
                problems.append(Problem(f"layer directory {layer_id} of storage driver {name} has no record",
                                        _bind(driver.remove, layer_id)))
    for row in rows:
        if not driver.exists(row["cache_id"]):
            problems.append(Problem(f"layer {row['chain_id']} is recorded but missing from storage driver {name}",
                                    _bind(_drop_layer_row, engine, name, row["cache_id"])))
    return problems


def _drop_layer_row(engine, driver_name: str, cache_id: str) -> None:
    with engine.store.transaction() as db:
        db.execute("DELETE FROM layers WHERE driver = ? AND cache_id = ?", (driver_name, cache_id))


# -- containers ---------------------------------------------------------------------------------


def _containers(engine) -> list[Problem]:
    service = engine.containers
    problems = []
    for row in engine.store.all("SELECT * FROM containers ORDER BY created"):
        container = Container.from_row(row)
        state = container.state
        if container.running and not alive(state.get("MonitorPid", 0), state.get("MonitorStart")):
            problems.append(Problem(f"container {container.short_id} ({container.name}) is marked running but its "
                                    "monitor is gone", _bind(service.reconcile, container)))
        elif (not container.running and container.driver == engine.storage_driver_name
              and not engine.storage.exists(container.id)):
            problems.append(Problem(f"container {container.short_id} ({container.name}) has no writable layer",
                                    _bind(service.remove, container.id, force=True)))
    return problems


# -- blobs --------------------------------------------------------------------------------------


def _blobs(engine) -> list[Problem]:
    content = engine.content
    referenced: set[str] = set()
    for row in engine.store.all("SELECT id, manifest FROM images"):
        referenced.add(row["id"])
        referenced.update(layer["digest"] for layer in (loads(row["manifest"]) or {}).get("layers", []))
    problems = [Problem(f"blob {digest} is referenced by no image", _bind(content.delete, digest))
                for digest in sorted(content.digests()) if digest not in referenced]
    if any(content.dir.glob(".tmp-*")):
        problems.append(Problem("temporary files a killed writer left in the content store",
                                _bind(content.clean_temporary, 0)))
    return problems


# -- locks --------------------------------------------------------------------------------------


def _locks(engine) -> list[Problem]:
    """Lock files of containers and layers that no longer exist, and that nobody holds."""
    directory = engine.runroot / "locks"
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    containers = {r["id"] for r in engine.store.all("SELECT id FROM containers")}
    chains = {r["chain_id"] for r in engine.store.all("SELECT chain_id FROM layers")}
    for row in engine.store.all("SELECT diff_ids FROM images"):
        chains.update(chain_ids(loads(row["diff_ids"])))
    problems = []
    for name in names:
        stem = name.removesuffix(".lock")
        if stem.startswith("container-"):
            stale = stem[len("container-"):] not in containers
        elif stem.startswith("layer-"):
            stale = "sha256:" + stem[len("layer-"):] not in chains
        else:
            continue
        if stale and not _held(directory / name):
            problems.append(Problem(f"lock {name} is left from something that no longer exists",
                                    _bind(engine.forget_lock, stem, held=False)))
    return problems


def _held(path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _bind(function, *args, **kwargs) -> Callable[[], object]:
    return lambda: function(*args, **kwargs)
