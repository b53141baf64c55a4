"""The small interfaces each driver kind implements.

A plugin names its drivers through a registration hook (see hookspecs.py);
the engine instantiates the one the configuration picks. Every driver class
may say it cannot run on this host through `unsupported_reason()`: the engine
then reports that reason instead of crashing ("aufs: the kernel has no aufs
filesystem"), as containerd's plugins report "skip".

Vocabulary shared by all kinds:
- *home*: the directory a driver owns under berth's root; nothing else
  writes there, so two drivers never corrupt each other's data.
- *options*: the driver's table from the configuration file (strings).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, ClassVar, Iterator, Mapping


class Driver(ABC):
    """What every driver kind has in common."""

    #: the name users write in the config file and on the command line
    name: ClassVar[str] = ""

    @classmethod
    def unsupported_reason(cls) -> str | None:
        """Why this host cannot run the driver, or None when it can."""
        return None


# --------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry of a layer's change list, as `docker diff` prints it."""

    kind: str  # "A" added, "C" changed, "D" deleted
    path: str  # absolute path inside the container, e.g. "/etc/hosts"


class StorageDriver(Driver):
    """Stacks read-only layers and a writable layer into a root filesystem.

    Vocabulary (as Docker's graphdriver): a *layer* is named by an *id*
    (berth uses the OCI chain ID of image layers and the container ID of a
    writable layer). Each layer has at most one *parent*, the layer below it;
    a base layer has none. Image layers are read-only once `apply_diff`
    returned; a container's writable layer is made by `create_rw`.

    Worked example -- importing a two-layer image and running it::

        d.create("L1", None);  d.apply_diff("L1", tar1)
        d.create("L2", "L1");  d.apply_diff("L2", tar2)
        d.create_rw("C", "L2")
        root = d.mount("C")        # union of C over L2 over L1
        ...                        # the container writes; only C changes
        d.changes("C")             # [Change("C", "/etc"), ...]
        d.export_diff("C", out)    # OCI layer tar of C against L2
        d.unmount("C"); d.remove("C")

    Every method is idempotent where that makes sense (remove of a missing
    layer, unmount of an unmounted one) so that crash recovery can replay.
    """

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        self.home = Path(home)
        self.options = dict(options or {})

    @abstractmethod
    def create(self, id: str, parent: str | None) -> None:
        """Make an empty read-only layer `id` on `parent`, ready for apply_diff.

        Raises Conflict if `id` exists, NotFound if `parent` does not.
        """

    @abstractmethod
    def apply_diff(self, id: str, diff: BinaryIO) -> int:
        """Extract an uncompressed OCI layer tar stream into layer `id`.

        Whiteouts (`.wh.NAME`, `.wh..wh..opq`) delete from the layers below.
        No entry may land outside the layer (see berth.core.archive). Returns
        the bytes of regular-file content written. A broken or hostile tar
        raises Corrupt. On failure the layer is left as after `create` (the
        caller removes it).
        """

    @abstractmethod
    def create_rw(self, id: str, parent: str | None) -> None:
        """Make the writable layer `id` of a container on image layer `parent`.

        Raises Conflict if `id` exists, NotFound if `parent` does not.
        """

    @abstractmethod
    def mount(self, id: str) -> Path:
        """Return the directory holding the union of `id` and its ancestors.

        Mount counts nest: each mount needs one unmount. The count is shared
        by every berth process on the host, and the mount is visible to them
        all (no private mount namespace). An image layer may be mounted too
        (read-only where the driver can). Raises NotFound for a missing layer.
        """

    @abstractmethod
    def unmount(self, id: str) -> None:
        """Undo one `mount`."""

    @abstractmethod
    def exists(self, id: str) -> bool:
        """Whether layer `id` is present."""

    @abstractmethod
    def remove(self, id: str) -> None:
        """Delete layer `id` (unmounting it first). Missing is not an error."""

    @abstractmethod
    def changes(self, id: str) -> list[Change]:
        """What layer `id` adds, changes and deletes against its parent.

        Docker's semantics, sorted by path: an added directory lists its
        contents as A too; a deleted one is one D (its contents are not
        listed); a directory with any change inside is C; "/" is never listed.
        """

    @abstractmethod
    def export_diff(self, id: str, out: BinaryIO) -> None:
        """Write layer `id`'s changes as an uncompressed OCI layer tar.

        Deletions are `.wh.NAME`, opaque directories `.wh..wh..opq`; the
        same content always gives the same bytes (sorted, mtimes in seconds).
        """

    @abstractmethod
    def usage(self, id: str) -> int:
        """Bytes used by layer `id` alone (not its ancestors).

        Regular-file content of the layer's own changes (Docker's SIZE).
        """

    def status(self) -> list[tuple[str, str]]:
        """Lines for `berth info` ("Backing Filesystem", "extfs"), in order."""
        return []

    def metadata(self, id: str) -> dict[str, str]:
        """GraphDriver.Data for inspect (LowerDir, UpperDir, ...)."""
        return {}

    def cleanup(self) -> None:
        """Unmount everything this driver mounted (engine shutdown / reset)."""


# --------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LogEntry:
    stream: str  # "stdout" or "stderr"
    line: bytes  # one line, with its trailing newline if it had one
    time: datetime  # when berth read it, UTC


class LogDriver(Driver):
    """Receives a container's output lines; may be able to read them back.

    One instance per container, made by the container's monitor process.
    """

    #: whether `read` works; `berth logs` refuses otherwise, as Docker does
    readable: ClassVar[bool] = False

    def __init__(self, container_id: str, log_dir: Path, options: Mapping[str, str] | None = None):
        self.container_id = container_id
        self.log_dir = Path(log_dir)
        self.options = dict(options or {})

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """Raise InvalidArgument for an option this driver does not know."""

    @abstractmethod
    def write(self, entry: LogEntry) -> None:
        """Record one line."""

    def close(self) -> None:
        """Flush and release; the container has exited."""

    def read(
        self,
        *,
        follow: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        tail: int | None = None,
    ) -> Iterator[LogEntry]:
        """Yield recorded entries, oldest first; with `follow`, keep waiting.

        Following must survive a rotation of the underlying files.
        """
        raise NotImplementedError


# --------------------------------------------------------------------------
# volumes
# --------------------------------------------------------------------------


class VolumeDriver(Driver):
    """Keeps named volumes: data that outlives any container."""

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        self.home = Path(home)
        self.options = dict(options or {})

    @abstractmethod
    def create(self, name: str, options: Mapping[str, str]) -> None:
        """Make volume `name`; options are the user's `-o key=value`."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete volume `name` and its data."""

    @abstractmethod
    def mount(self, name: str, container_id: str) -> Path:
        """Make the volume usable by a container; return the host path to bind."""

    @abstractmethod
    def unmount(self, name: str, container_id: str) -> None:
        """The container no longer uses the volume."""

    @abstractmethod
    def path(self, name: str) -> Path:
        """The volume's host path (its Mountpoint in inspect)."""

    @abstractmethod
    def list(self) -> list[str]:
        """Names of the volumes this driver holds."""

    def capabilities(self) -> dict[str, str]:
        """{"Scope": "local"} or {"Scope": "global"}."""
        return {"Scope": "local"}
