"""The engine: one object that owns the configuration, the store, the
drivers and the event bus. Every state change goes through it and emits
exactly one event; metrics, logs and plugins subscribe.

Constructing an Engine is cheap: the database, the drivers and the plugin
manager are opened on first use, so `berth --help` and argument errors
never pay for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib
import os
from collections.abc import Iterator

from berth.core.config import Config
from berth.core.errors import BerthError
from berth.core.plumbing import events
from berth.core.plumbing.log import get_logger

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any

log = get_logger("berth.engine")


class Engine:
    def __init__(self, config: Config):
        self.config = config
        self.root = config.root
        self.runroot = config.runroot
        self._started = False

    # -- places --------------------------------------------------------------

    def _ensure_dirs(self) -> None:
        for d in (self.root, self.runroot):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)  # the host's data: nobody else reads it

    @functools.cached_property
    def store(self):
        from berth.core.plumbing.store import Store

        self._ensure_dirs()
        store = Store(self.root / "berth.db")
        self._recover_after_reboot(store)
        return store

    @functools.cached_property
    def content(self):
        from berth.core.oci.content import ContentStore

        self._ensure_dirs()
        return ContentStore(self.root)

    @functools.cached_property
    def journal(self) -> events.Journal:
        self._ensure_dirs()
        return events.Journal(self.root / "events.jsonl")

    # -- drivers ---------------------------------------------------------------

    @property
    def storage_driver_name(self) -> str:
        return self.config.get("storage.driver")

    @functools.cached_property
    def storage(self):
        """The configured storage driver, each in its own directory under root."""
        name = self.storage_driver_name
        cls = self.driver("storage", name)
        self._ensure_dirs()
        home = self.root / name
        home.mkdir(mode=0o700, exist_ok=True)
        driver = cls(home, self.config.get("storage.options"))
        from berth.core.images import incomplete

        incomplete.sweep(self, driver)  # layers a killed pull or commit left half made
        return driver

    def driver(self, kind: str, name: str) -> type:
        """The class of driver `name` of `kind`, refused clearly when unsupported."""
        from berth.core import plugins  # pluggy: only for commands that use drivers

        self._plugins_loaded()
        return plugins.drivers(kind).supported(name)

    def _plugins_loaded(self) -> None:
        """Fire `engine_started` once, when this engine first needs its plugins
        (commands that need none, like `ps`, never pay for loading them)."""
        if not self._started:
            self._started = True
            self.hook("engine_started")

    # -- services --------------------------------------------------------------

    @functools.cached_property
    def images(self):
        from berth.core.images.image import ImageService

        return ImageService(self)

    @functools.cached_property
    def containers(self):
        from berth.core.containers.container import ContainerService

        return ContainerService(self)

    @functools.cached_property
    def networks(self):
        from berth.core.networks.network import NetworkService

        return NetworkService(self)

    @functools.cached_property
    def volumes(self):
        from berth.core.volumes.volume import VolumeService

        return VolumeService(self)

    # -- events ----------------------------------------------------------------

    def emit(self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> dict:
        """Record one state change: journal first (other processes), then
        subscribers in this process, then plugins (hook event_emitted)."""
        event = events.make_event(type_, action, actor_id, attributes)
        self.journal.append(event)
        log.debug("event", type=type_, action=action, id=actor_id)
        events.send(type_, self, event)
        self.hook("event_emitted", event=event)
        return event

    def hook(self, name: str, /, **kwargs: Any) -> None:
        """Call a lifecycle hook; a plugin's failure is logged, never fatal.

        `name` is positional-only: hooks such as volume_removed take a `name` too.
        """
        if name != "engine_started":
            self._plugins_loaded()
        from berth.core import plugins

        try:
            plugins.call(name, engine=self, **kwargs)
        except Exception as exc:  # a plugin must not break the user's command
            log.warning("plugin hook failed", hook=name, error=str(exc))

    # -- locks -----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, shared: bool = False) -> Iterator[None]:
        """A lock across every berth process on this host (exclusive unless `shared`)."""
        self._ensure_dirs()
        locks = self.runroot / "locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def forget_lock(self, name: str, held: bool = True) -> bool:
        """Delete the file of lock `name` once the thing it guards is gone (a
        removed container or layer): lock files must not pile up. `held`: the
        caller holds it; else it is deleted only if nobody holds it now. A
        process waiting on the old file finds the thing gone, as it would anyway."""
        path = self.runroot / "locks" / f"{name}.lock"
        try:
            if held:
                os.unlink(path)
                return True
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(path)
            return True
        except (BlockingIOError, FileNotFoundError):
            return False
        finally:
            os.close(fd)

    # -- recovery ------------------------------------------------------------

    def _recover_after_reboot(self, store) -> None:
        """An empty run directory means the host rebooted: once, under a lock,
        mark running containers exited and clear what they held."""
        marker = self.runroot / "booted"
        if marker.exists():
            return
        with self.lock("recover"):
            if marker.exists():
                return
            for target in REBOOT_RECOVERIES:
                module, _, attr = target.partition(":")
                getattr(importlib.import_module(module), attr)(self, store)
            marker.write_text(str(os.getpid()))


# -- what `info` shows ---------------------------------------------------------------------


def _os_name() -> str:
    import platform

    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def info_data(engine) -> dict:
    """`berth info` and GET /info: Docker's field names."""
    import platform

    from berth.core import __version__, plugins
    from berth.core.runtime.cgroups import is_v2

    containers = engine.containers.list()
    running = sum(1 for c in containers if c.status == "running")
    paused = sum(1 for c in containers if c.status == "paused")
    try:
        storage_status = engine.storage.status()
    except BerthError as exc:
        storage_status = [("Error", exc.message)]
    images = engine.store.one("SELECT COUNT(*) AS n FROM images")["n"]
    return {
        "ID": "", "Containers": len(containers), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused, "Images": images,
        "Driver": engine.storage_driver_name, "DriverStatus": [list(x) for x in storage_status],
        "LoggingDriver": engine.config.get("logging.driver"),
        "CgroupDriver": "cgroupfs", "CgroupVersion": "2" if is_v2() else "1",
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(),
        "DockerRootDir": str(engine.root), "BerthRootDir": str(engine.root), "RunRoot": str(engine.runroot),
        "Name": platform.node(), "ServerVersion": __version__,
        "DefaultRuntime": "berth", "Plugins": _plugins(), "BerthPlugins": plugins.describe(),
    }


def disk_usage(engine) -> dict:
    """What `berth system df` and GET /system/df report: {"images": [(Image, containers using it)],
    "containers": [(Container, bytes of its writable layer)], "volumes": [(volume dict, bytes of
    its tree, containers using it)], "build_cache": []}. The builder's cache is its intermediate
    images (counted among images, as Docker's classic builder's): no separate build cache."""
    from pathlib import Path

    from berth.core.driverkit import tree_size

    users: dict[str, int] = {}
    for row in engine.store.all("SELECT image_id FROM containers"):
        users[row["image_id"]] = users.get(row["image_id"], 0) + 1
    images = [(img, users.get(img.id, 0)) for img in engine.images.all()]
    containers = []
    for c in engine.containers.list():
        try:
            size = engine.containers.storage_for(c).usage(c.id)
        except BerthError:
            size = 0
        containers.append((c, size))
    volumes = []
    for v in engine.volumes.list():
        size = tree_size(Path(v["Mountpoint"])) if v.get("Mountpoint") else 0
        volumes.append((v, size, len(engine.volumes.users(v["Name"]))))
    return {"images": images, "containers": containers, "volumes": volumes, "build_cache": [],
            "shared": _shared_sizes(engine, [img for img, _ in images])}


def _shared_sizes(engine, images) -> dict[str, int]:
    """Image ID -> bytes of its layers that another image also has (Docker's SharedSize)."""
    sizes = {row["chain_id"]: row["size"] or 0 for row in engine.store.all(
        "SELECT chain_id, size FROM layers WHERE driver = ?", (engine.storage_driver_name,))}
    holders: dict[str, int] = {}
    for img in images:
        for chain_id in set(img.chain_ids):
            holders[chain_id] = holders.get(chain_id, 0) + 1
    return {img.id: sum(sizes.get(c, 0) for c in set(img.chain_ids) if holders[c] > 1) for img in images}


def _plugins() -> dict:
    from berth.core import plugins

    out = {}
    for kind, title in (("storage", "Storage"), ("log", "Log"), ("network", "Network"), ("volume", "Volume")):
        try:
            out[title] = plugins.drivers(kind).names()
        except BerthError:
            out[title] = []
    return out


# What each subsystem does after a reboot: "module:function(engine, store)".
REBOOT_RECOVERIES: list[str] = ["berth.core.containers.container:recover_after_reboot",
                                 "berth.core.networks.network:recover_after_reboot"]
