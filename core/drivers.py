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

from abc import ABC, abstractmethod
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from berth.core.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import BinaryIO, ClassVar


class Driver(ABC):  # noqa: B024 - abstract by kind: each subclass names its methods
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


# The value types below are named tuples: immutable, compared by value, and
# cheap to define (dataclasses cost every command a few milliseconds).


class Change(namedtuple("Change", "kind path")):
    """One entry of a layer's change list, as `docker diff` prints it.

    kind: "A" added, "C" changed, "D" deleted.
    path: absolute path inside the container, e.g. "/etc/hosts".
    """

    __slots__ = ()


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

    #: True when `create` does not read the parent's content, so that layers
    #: of one chain can be filled by `apply_diff` side by side, in threads
    #: (overlay2 keeps each layer's diff apart). vfs and btrfs copy the
    #: parent in `create`, so their layers are filled in chain order.
    independent_layers: bool = False
    #: the filesystem type `home` must be on (btrfs), or None for any; the
    #: conformance kit (berth.testing) makes the homes of such a driver on a
    #: loop-mounted filesystem of that type.
    home_filesystem: ClassVar[str | None] = None

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
        No entry may land outside the layer (see berth.core.oci.archive). Returns
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

    def layer_ids(self) -> list[str] | None:
        """The IDs of every layer in home, complete or not, as `layer_dir_name`
        writes them (``berth system check`` compares them with berth's
        records); None when the driver cannot list them (the check is skipped)."""
        return None


# --------------------------------------------------------------------------
# logging
# --------------------------------------------------------------------------


class LogEntry(namedtuple("LogEntry", "stream line time")):
    """One line of a container's output.

    stream: "stdout" or "stderr".
    line: bytes, one line, with its trailing newline if it had one.
    time: a datetime, when berth read it, UTC (aware).
    """

    __slots__ = ()


class LogDriver(Driver):
    """Receives a container's output lines; may be able to read them back.

    One writing instance per container, made by the container's monitor
    process: it alone calls `write` and `close`. Readers (`berth logs`, in
    other processes) make their own instance with the same arguments and
    call `read`; a reader never writes.

    Worked example::

        cls = plugins.drivers("log").get("json-file")
        cls.validate_options({"max-size": "10m"})        # at container create
        w = cls(cid, log_dir, {"max-size": "10m"})       # in the monitor
        w.write(LogEntry("stdout", b"hello\n", now)); w.close()
        r = cls(cid, log_dir, {"max-size": "10m"})       # in `berth logs`
        for e in r.read(follow=True, stop=lambda: not running()): ...
    """

    #: whether `read` works; `berth logs` refuses otherwise, as Docker does
    readable: ClassVar[bool] = False

    def __init__(self, container_id: str, log_dir: Path, options: Mapping[str, str] | None = None):
        self.container_id = container_id
        self.log_dir = Path(log_dir)
        self.options = dict(options or {})

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        """Raise InvalidArgument for an option this driver does not know or
        a value it cannot use, with Docker's text
        (``unknown log opt 'foo' for json-file log driver``).
        """

    @abstractmethod
    def write(self, entry: LogEntry) -> None:
        """Record one line. May raise OSError (disk full): the caller logs it
        and goes on; the container must not die of it."""

    def close(self) -> None:
        """Flush and release; the container has exited. Idempotent."""

    def handoff(self) -> dict | None:
        """Let the container's monitor go on without this driver: once the container
        runs, the monitor re-executes into a small interpreter that holds only the
        standard library's C modules (berth.core.containers.steady), so that each
        running container costs little memory. None (the default): the monitor
        keeps this driver loaded instead. ``{}``: the output is discarded.
        Otherwise ``{"writer": FILE, "encoder": [FILE, FUNCTION], **state}``:
        FILE a module that imports only C modules, loaded by its path alone;
        the writer's ``RotatingWriter(**state)`` (berth.core.logwriter's
        interface) is given ``function(stream, line, time_ns)``'s records.
        Called once; the driver is not used after it."""
        return None

    def read(
        self,
        *,
        follow: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
        tail: int | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[LogEntry]:
        """Yield recorded entries, oldest first; with `follow`, keep waiting.

        - `since` / `until`: only entries with since <= time <= until.
        - `tail`: only the last `tail` entries (after since/until filtering);
          None or negative means all, 0 none.
        - `follow`: after the recorded entries, yield new ones as another
          process writes them, across rotations (none lost, none repeated).
          Following ends when `stop()` (polled while idle) returns true and
          everything written so far is yielded, or once an entry later than
          `until` appears; without `stop` it lasts until the caller closes
          the generator.

        A driver that cannot read (`readable = False`) raises Unsupported
        with Docker's text; this default does exactly that.
        """
        raise Unsupported("configured logging driver does not support reading")


# --------------------------------------------------------------------------
# volumes
# --------------------------------------------------------------------------


class VolumeDriver(Driver):
    """Keeps named volumes: data that outlives any container.

    The engine checks names against Docker's grammar and refuses to remove a
    volume in use; a driver still refuses names that could escape its home
    (InvalidArgument). Every method works across processes: state lives on
    disk, never only in memory.

    Worked example::

        d.create("data", {})                    # idempotent with equal options
        src = d.mount("data", cid)              # bind src into the container
        d.unmount("data", cid)                  # the container stopped
        d.remove("data")                        # NotFound: "no such volume: data"
    """

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        self.home = Path(home)
        self.options = dict(options or {})

    @abstractmethod
    def create(self, name: str, options: Mapping[str, str]) -> None:
        """Make volume `name`; options are the user's `-o key=value`.

        Creating an existing volume with equal options does nothing; with
        different options it raises Conflict. Bad options: InvalidArgument.
        A crash never leaves half a volume.
        """

    @abstractmethod
    def remove(self, name: str) -> None:
        """Delete volume `name` and its data (unmounting it first).

        A missing volume raises NotFound (``no such volume: NAME``).
        """

    @abstractmethod
    def mount(self, name: str, container_id: str) -> Path:
        """Container `container_id` starts using the volume; return the host
        path to bind. Calls for several containers nest; a repeated call for
        the same container counts once. NotFound for a missing volume."""

    @abstractmethod
    def unmount(self, name: str, container_id: str) -> None:
        """Container `container_id` no longer uses the volume; after the last
        user the driver may release it (a tmpfs is unmounted and its data
        gone). Unknown container: no-op. NotFound for a missing volume."""

    @abstractmethod
    def path(self, name: str) -> Path:
        """The volume's host path (its Mountpoint in inspect); does not check
        that the volume exists."""

    @abstractmethod
    def list(self) -> list[str]:
        """Names of the volumes this driver holds, sorted."""

    def capabilities(self) -> dict[str, str]:
        """{"Scope": "local"} or {"Scope": "global"}."""
        return {"Scope": "local"}


# --------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------


class NetworkSpec(namedtuple("NetworkSpec", "id name driver subnet gateway bridge internal table options",
                               defaults=(None, None, "", False, "berth", MappingProxyType({})))):
    """One network as the store holds it, handed to its driver.

    id, name, driver (str); subnet "10.213.0.0/16" and gateway "10.213.0.1"
    (or None); bridge, the host device the network is built on, as its
    driver's ``device_name`` named it ("berth0", "br-<id12>"; "" for none);
    internal: no traffic in or out of the subnet, no masquerade; options:
    the network's options for its driver (``network create -o KEY=VALUE``,
    as the driver's ``validate_options`` returned them; a read-only mapping
    of strings).

    ``table`` is the nftables table (family ``ip``) this berth installation
    owns: every rule a driver adds lives there, tagged with a comment, so a
    driver removes exactly its own rules and a test installation never
    touches a real one's.
    """

    __slots__ = ()


class Endpoint(namedtuple("Endpoint", "container_id network_id address prefixlen gateway mac host_ifname ifname "
                                       "default_route", defaults=("eth0", True))):
    """A container's place on one network while it runs.

    address "10.213.0.2", prefixlen 16, gateway "10.213.0.1", mac
    "02:42:0a:d5:00:02", host_ifname "veth1a2b3c4" (on the host), ifname
    "eth0" (inside the container), default_route: the container's first
    network routes everything.

    The service allocates ``address`` (IPAM in the store), derives ``mac``
    (02:42 + the address's bytes, as Docker) and the host-side interface
    name; the driver only wires what it is given.
    """

    __slots__ = ()


class PortMapping(namedtuple("PortMapping", "proto host_ip host_port container_port")):
    """One published port: host_ip:host_port/proto -> endpoint address:container_port.

    proto "tcp", "udp" or "sctp"; host_ip "" for every address of the host,
    else one address.
    """

    __slots__ = ()


class NetworkDriver(Driver):
    """Wires containers to a network: devices, addresses, routes, NAT.

    The NetworkService (berth.core.networks.network) owns the bookkeeping --
    which networks exist, IPAM, port allocation, /etc/hosts -- and calls the
    driver only to make the host match it. Three kinds of operation:

    - network lifetime: ``create_network`` / ``delete_network``. Both are
      idempotent: create_network "ensures". It is called before an attach
      unless it already ran this boot and the network's device (its
      ``device_name``, if it names one) still exists, so a bridge deleted by
      hand or by a reboot comes back; delete_network of a missing network
      is not an error.
    - container wiring: ``attach`` runs while the container's first process
      waits in its fresh network namespace (``pid`` is its host PID, the
      namespace is ``/proc/PID/ns/net``); ``detach`` undoes it, and gets
      back what ``attach`` returned (berth stores it). attach is NOT
      idempotent and may fail half-way: the service then calls detach with
      ``attached=None``, which must remove whatever exists and ignore what
      does not.
    - port publishing: ``publish`` adds forwarding rules for an attached
      endpoint; ``unpublish`` removes every rule of that container on that
      network (idempotent). Only for drivers that declare
      ``publishes_ports``: berth refuses ``-p`` on the networks of others.

    ``namespace`` says what the runtime gives the container: ``"new"`` (a
    fresh namespace the driver wires: bridge; loopback only: none),
    ``"host"`` (the host's stack: host) or ``"join"`` (another container's:
    container). Drivers that need no wiring keep the no-op defaults.

    Constructed as ``cls(home, options)``: ``home`` is a directory of the
    driver's own (``<root>/networks/<name>``, made by berth, mode 0700) for
    whatever state it keeps on disk. Every method may be called by any berth
    process at any time, also for crash recovery after the process that
    attached died; use no in-memory state between calls.
    """

    namespace: ClassVar[str] = "new"
    #: whether networks of this driver can be created by `network create`
    user_creatable: ClassVar[bool] = False
    #: whether `publish` forwards host ports (``-p``); berth refuses ``-p`` on
    #: a network whose driver does not
    publishes_ports: ClassVar[bool] = False

    def __init__(self, home: Path, options: Mapping[str, str] | None = None):
        self.home = Path(home)
        self.options = dict(options or {})

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> dict[str, str]:
        """The options of a new network (``network create -o KEY=VALUE``) as
        they are to be stored and handed back in ``NetworkSpec.options``
        (defaults filled in, if any); InvalidArgument naming a bad one.
        Default: no option is known."""
        for key in options:
            raise InvalidArgument(f"network driver {cls.name} does not know option {key!r}")
        return {}

    @classmethod
    def device_name(cls, network_id: str, options: Mapping[str, str]) -> str:
        """The host device a network of this driver is built on ("" for none):
        berth calls create_network again when it has vanished. Default: ""."""
        return ""

    def create_network(self, net: NetworkSpec) -> None:
        """Make the host side of `net` exist (bridge, gateway address, NAT). Idempotent."""

    def delete_network(self, net: NetworkSpec) -> None:
        """Remove the host side of `net` and all its rules. Missing is not an error."""

    def cleanup(self, table: str) -> None:
        """Remove whatever this driver made for the berth installation whose
        nftables table is `table`, networks and rules alike (``system reset``,
        uninstall, tests). Default: nothing."""

    def preload(self) -> None:
        """Load now what `attach` will need (a library, say). The monitor
        calls it in a forked process while it mounts and starts the
        container, and that process then attaches the container. Default:
        nothing."""

    def attach(self, net: NetworkSpec, endpoint: Endpoint, pid: int) -> dict | None:
        """Give the container whose PID 1 is `pid` its interface on `net`.

        May return a small JSON-serializable dict (the name of a device it
        made, an address it leased): berth stores it and hands it to
        `detach`."""

    def detach(self, net: NetworkSpec, endpoint: Endpoint, attached: dict | None = None) -> None:
        """Remove the container's interface on `net`. Idempotent.

        `attached` is what `attach` returned, or None (attach failed or
        never ran, or berth is recovering after a crash)."""

    def publish(self, net: NetworkSpec, endpoint: Endpoint, ports: list[PortMapping]) -> None:
        """Forward each host port to the endpoint (from other hosts, this host's
        own addresses including 127.0.0.1 for wildcard or loopback bindings,
        and other containers)."""

    def unpublish(self, net: NetworkSpec, endpoint: Endpoint) -> None:
        """Remove every forwarding rule of the endpoint's container. Idempotent."""


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------


class Registry(Driver):
    """An image transport with the OCI distribution API's vocabulary.

    The default driver, ``docker``, speaks the HTTP API of docker.io and any
    v2 registry (berth.plugins.registry.distribution); archive formats speak
    the same vocabulary so that berth.core.images.transfer copies images between
    the store and any transport the same way.

    Constructed as ``cls(location, options)``: `location` is ``host[:port]``
    (``docker.io`` for Docker Hub; an explicit ``https://`` or ``http://``
    prefix picks the scheme) or, for an archive, a file path. `options`:

    - ``insecure`` (bool): plain HTTP instead of HTTPS;
    - ``credentials``: ``(username, password)`` or None (anonymous);
    - ``mirrors`` (list of locations): pull-through mirrors (berth.core.images.transfer
      tries them itself; a driver may ignore this);
    - ``user_agent`` (str), ``timeout`` (seconds a registry may stay silent,
      per network operation), ``deadline`` (seconds one request may take in
      all, its body included): a stalled registry fails with RegistryError
      naming it;
    - ``chunk_size`` (bytes): above it, blobs are uploaded in chunks.

    Contract every implementation keeps (berth.testing.registry checks it):

    - Every digest is ``sha256:`` + 64 lower-case hex digits; anything else
      (``sha256:../x``, a wrong length) is refused with Corrupt before any
      request is made.
    - Nothing a registry sends is trusted: a manifest fetched by digest must
      hash to it, a manifest's digest is computed from its bytes (never taken
      from a header), manifests over MANIFEST_MAX bytes are refused, a
      ``mediaType`` that disagrees with the Content-Type is refused; each
      of these raises Corrupt. A blob stream raises Corrupt at its end when
      its bytes do not match the digest or the size. (Whatever the stream
      does, berth's content store stops reading one byte past the size the
      manifest declares.)
    - Errors are berth errors with one line: NotFound (unknown manifest,
      blob or repository, with Docker's texts such as ``manifest unknown``),
      Unauthorized (``unauthorized: incorrect username or password``),
      RegistryError (anything else the registry refuses, 5xx, network).
    - Credentials never appear in a repr, a message, a log line or an event.
    - Instances are safe to use from several threads at once (parallel layer
      transfers).
    """

    #: the largest manifest accepted, as the distribution spec suggests
    MANIFEST_MAX: ClassVar[int] = 4 << 20
    #: whether berth may transfer several blobs at once through one instance
    parallel: ClassVar[bool] = True
    #: what `location` is: ``"host"`` (``host[:port]`` of an HTTP registry) or
    #: ``"path"`` (a file or directory on this host)
    location_kind: ClassVar[str] = "host"

    def __init__(self, location: str, options: Mapping | None = None):
        self.location = location
        self.options = dict(options or {})

    def __repr__(self) -> str:  # never show options: they hold credentials
        return f"<{type(self).__name__} {self.location}>"

    @abstractmethod
    def get_manifest(self, repository: str, reference: str, accept: list[str]) -> tuple[bytes, str, str]:
        """Fetch a manifest or index by tag or digest.

        `accept` lists the media types the caller understands, preferred
        first. Returns (raw bytes, media type, ``sha256:`` digest of the bytes).
        Raises NotFound (``manifest unknown``), Corrupt (see the class doc).
        """

    @abstractmethod
    def get_blob(self, repository: str, digest: str) -> BinaryIO:
        """A readable stream of blob `digest` (the caller closes it).

        The stream raises Corrupt when it ends on bytes that do not hash to
        `digest` (or on a truncated body). Raises NotFound for an unknown blob.
        """

    @abstractmethod
    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether `repository` already holds blob `digest`."""

    def put_blob(self, repository: str, digest: str, size: int, stream: BinaryIO,
                 mount_from: str | None = None) -> bool:
        """Upload `size` bytes of `stream` as blob `digest`.

        With `mount_from` (another repository of the same registry that holds
        the blob), try a cross-repository mount first. Returns True when the
        blob was mounted rather than uploaded.
        """
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: pushing is not supported")

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Store manifest `data` under `reference` (a tag or its digest); return its digest."""
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: pushing is not supported")

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of `repository`, in the registry's order (all pages)."""
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: listing tags is not supported")

    def catalog(self) -> list[str]:
        """Every repository the registry holds (all pages)."""
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: listing repositories is not supported")

    def search(self, term: str, limit: int = 25) -> list[dict]:
        """Repositories matching `term`, at most `limit`.

        Each a dict: name, description, star_count, is_official, is_automated.
        """
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: search is not supported")

    def login(self, username: str | None = None, password: str | None = None) -> None:
        """Check credentials (the given ones, else the configured ones) against the registry.

        Raises Unauthorized (``unauthorized: incorrect username or password``).
        """
        from berth.core.errors import Unsupported

        raise Unsupported(f"{self.name or type(self).__name__}: login is not supported")
