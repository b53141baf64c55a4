"""Named and anonymous volumes, and the mounts a container gets.

A container's mounts are decided at create time and stored as inspect's
``Mounts`` (Type, Name, Source, Destination, Driver, Mode, RW, Propagation);
at start they become runtime mounts: a bind source resolved on the host, a
volume mounted by its driver (created on first use and, when new and empty,
filled with what the image has at the mount point), a tmpfs.
"""

from __future__ import annotations

# shutil (it loads bz2 and lzma) is imported where used: a container start needs none of it.
import os
import re
from pathlib import Path

from berth.core.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.core.plumbing.ids import random_hex
from berth.core.plumbing.store import dumps, loads
from berth.core.plumbing.units import now_iso

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'
        )


class VolumeService:
    def __init__(self, engine):
        self.engine = engine
        self._drivers: dict[str, object] = {}

    # -- drivers -----------------------------------------------------------------

    def driver(self, name: str):
        if name not in self._drivers:
            cls = self.engine.driver("volume", name)
            home = self.engine.root / ("volumes" if name == "local" else f"volumes-{name}")
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._drivers[name] = cls(home, {})
        return self._drivers[name]

    # -- volumes -----------------------------------------------------------------

    def create(self, name: str | None = None, driver: str | None = None, options: dict | None = None,
               labels: dict | None = None, anonymous: bool = False) -> dict:
        """`volume create`; idempotent for an existing name with the same driver."""
        driver = driver or self.engine.config.get("volumes.driver")
        options = dict(options or {})
        name = name or random_hex(32)
        check_name(name)
        row = self.engine.store.one("SELECT * FROM volumes WHERE name = ?", (name,))
        if row is not None:
            if row["driver"] != driver:
                raise Conflict(f"volume {name} already exists with driver {row['driver']}")
            return self.inspect(name)
        drv = self.driver(driver)
        drv.create(name, options)
        try:
            with self.engine.store.transaction() as db:
                db.execute("INSERT INTO volumes (name, driver, options, labels, anonymous, created) VALUES (?,?,?,?,?,?)",
                           (name, driver, dumps(options), dumps(labels or {}), int(anonymous), now_iso()))
        except BaseException:
            drv.remove(name)
            raise
        self.engine.emit("volume", "create", name, {"driver": driver})
        self.engine.hook("volume_created", volume=self.inspect(name))
        return self.inspect(name)

    def _row(self, name: str):
        row = self.engine.store.one("SELECT * FROM volumes WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"No such volume: {name}")
        return row

    def mountpoint(self, name: str) -> str:
        """The volume's path on the host (inspect's Mountpoint; "" for a volume gone)."""
        row = self.engine.store.one("SELECT driver FROM volumes WHERE name = ?", (name,))
        try:
            return str(self.driver(row["driver"]).path(name)) if row else ""
        except BerthError:
            return ""

    def inspect(self, name: str) -> dict:
        row = self._row(name)
        return {
            "CreatedAt": row["created"],
            "Driver": row["driver"],
            "Labels": loads(row["labels"]) or None,
            "Mountpoint": str(self.driver(row["driver"]).path(name)),
            "Name": name,
            "Options": loads(row["options"]) or None,
            "Scope": self.driver(row["driver"]).capabilities().get("Scope", "local"),
        }

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        """Every volume, or those passing `volume ls --filter` (dangling, driver, name, label)."""
        from berth.core.plumbing.events import label_match

        out = []
        for row in self.engine.store.all("SELECT name FROM volumes ORDER BY name"):
            vol = self.inspect(row["name"])
            for key, values in (filters or {}).items():
                if key == "dangling":
                    ok = (values[0].lower() in ("true", "1")) == (not self.users(vol["Name"]))
                elif key == "driver":
                    ok = vol["Driver"] in values
                elif key == "name":
                    ok = any(n in vol["Name"] for n in values)
                elif key == "label":
                    ok = all(label_match(vol["Labels"] or {}, v) for v in values)
                else:
                    raise InvalidArgument(f"invalid filter '{key}'")
                if not ok:
                    break
            else:
                out.append(vol)
        return out

    def users(self, name: str) -> list[str]:
        """IDs of the containers whose mounts name this volume."""
        out = []
        for row in self.engine.store.all("SELECT id, mounts FROM containers"):
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in loads(row["mounts"]) or []):
                out.append(row["id"])
        return out

    def remove(self, name: str, force: bool = False) -> None:
        row = self._row(name)
        users = self.users(name)
        if users and not force:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.driver(row["driver"]).remove(name)
        with self.engine.store.transaction() as db:
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
        self.engine.emit("volume", "destroy", name, {"driver": row["driver"]})
        self.engine.hook("volume_removed", name=name)

    def prune(self, all_: bool = False, accept=None) -> list[str]:
        """Remove unused volumes: anonymous ones, or all with `all_` (Docker 23+); given
        `accept(created, labels)`, only those it accepts (prune --filter)."""
        removed = []
        for row in self.engine.store.all("SELECT name, anonymous, created, labels FROM volumes"):
            if accept is not None and not accept(row["created"], loads(row["labels"])):
                continue
            if (all_ or row["anonymous"]) and not self.users(row["name"]):
                self.remove(row["name"])
                removed.append(row["name"])
        return removed

    # -- containers --------------------------------------------------------------

    def ensure(self, mounts: list[dict]) -> None:
        """Create the volumes a new container's mounts name, if missing."""
        for m in mounts:
            if m["Type"] == "volume" and not self.engine.store.one("SELECT 1 FROM volumes WHERE name = ?", (m["Name"],)):
                self.create(m["Name"], m["Driver"], m.get("DriverOpts") or {}, anonymous=m.get("Anonymous", False))

    def mounts_for(self, container, rootfs: Path | None = None) -> list:
        """Runtime mounts for a starting container, creating volumes on first use."""
        from berth.core.runtime.spec import Mount

        out = []
        for m in self._container_mounts(container.id):
            options = ["rbind", "ro" if not m["RW"] else "rw", "rprivate"]
            if m["Type"] == "bind":
                source = Path(m["Source"])
                if not source.exists():
                    if m.get("CreateMountpoint", True):
                        source.mkdir(parents=True, exist_ok=True)  # as Docker does for -v
                    else:
                        raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {source}")
                out.append(Mount(destination=m["Destination"], source=os.path.realpath(source), type="bind",
                                 options=options))
            elif m["Type"] == "volume":
                row = self.engine.store.one("SELECT driver FROM volumes WHERE name = ?", (m["Name"],))
                if row is None:
                    self.create(m["Name"], m["Driver"], m.get("DriverOpts") or {}, anonymous=m.get("Anonymous", False))
                driver = row["driver"] if row else m["Driver"]  # an existing volume keeps its own driver
                path = self.driver(driver).mount(m["Name"], container.id)
                if not m.get("NoCopy") and rootfs is not None and _is_empty(path):
                    _copy_up(rootfs, m["Destination"], path)
                out.append(Mount(destination=m["Destination"], source=str(path), type="bind", options=options))
            elif m["Type"] == "tmpfs":
                opts = ["nosuid", "nodev"] + [o for o in (m.get("Options") or []) if o]
                if not m["RW"]:
                    opts.append("ro")
                out.append(Mount(destination=m["Destination"], source="tmpfs", type="tmpfs", options=opts))
        return out

    def release(self, container) -> None:
        """The container stopped: volume drivers may unmount."""
        for m in self._container_mounts(container.id):
            if m["Type"] == "volume":
                row = self.engine.store.one("SELECT driver FROM volumes WHERE name = ?", (m["Name"],))
                try:
                    self.driver(row["driver"] if row else m["Driver"]).unmount(m["Name"], container.id)
                except NotFound:
                    pass

    def remove_anonymous(self, container_id: str, mounts: list[dict] | None = None) -> None:
        """`rm -v` and `--rm`: delete the container's anonymous volumes."""
        for m in mounts if mounts is not None else self._container_mounts(container_id):
            if m["Type"] == "volume" and m.get("Anonymous"):
                try:
                    if not [u for u in self.users(m["Name"]) if u != container_id]:
                        self.remove(m["Name"], force=True)
                except NotFound:
                    pass

    def _container_mounts(self, container_id: str) -> list[dict]:
        row = self.engine.store.one("SELECT mounts FROM containers WHERE id = ?", (container_id,))
        return loads(row["mounts"]) if row else []


def _is_empty(path: Path) -> bool:
    try:
        return not any(os.scandir(path))
    except FileNotFoundError:
        return True


def _copy_up(rootfs: Path, destination: str, volume_path: Path) -> None:
    """Fill a new volume with the image's content at its mount point.

    The image path is resolved inside rootfs without following symlinks out
    of it: a symlinked mount point in a hostile image copies nothing.
    """
    import shutil

    current = Path(rootfs)
    for part in [p for p in destination.split("/") if p]:
        current = current / part
        if current.is_symlink() or not current.exists():
            return
    if not current.is_dir():
        return
    for entry in os.scandir(current):
        src, dst = Path(entry.path), volume_path / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copy2)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
    st = os.stat(current)
    os.chown(volume_path, st.st_uid, st.st_gid)
    os.chmod(volume_path, st.st_mode & 0o7777)
