"""Containers: the model, its state machine, and the service that runs them.

State machine (State.Status, as Docker)::

    created --start--> running --pause--> paused --unpause--> running
    running/paused --(process exits | stop | kill)--> exited --start--> running
    any --rm--> (gone)

A container whose command could not be executed stays "created" with
ExitCode 126/127 and State.Error set, as Docker leaves it.

Liveness: the store says "running" only as long as the recorded PID is
alive *and* has the recorded start time (PIDs are reused). Every read path
reconciles (`ContainerService.get/list`): when the monitor process is gone,
the container is marked exited and what it held is released. If the monitor
died while the container still runs, the container's cgroup is killed
(ExitCode 137): nothing runs unsupervised. An unknown exit code is recorded
as 255.
"""

from __future__ import annotations

# shutil (it loads bz2 and lzma) is imported where used: a container start needs none of it.
import os
import re
import signal as signals
import sqlite3
import time
from pathlib import Path

from berth.core.errors import BerthError, Conflict, FailedPrecondition, InvalidArgument, NotFound
from berth.core.plumbing.events import label_match
from berth.core.plumbing.ids import random_choice, random_hex
from berth.core.plumbing.records import Record
from berth.core.plumbing.store import dumps, loads
from berth.core.plumbing.units import now_iso
from berth.core.runtime.proc import start_time as proc_start

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from typing import Any

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ZERO_TIME = "0001-01-01T00:00:00Z"
CGROUP_PARENT = "berth"
UNKNOWN_EXIT = 255  # the process vanished and nobody saw its status
KILLED_EXIT = 137  # the monitor died and we killed the orphaned container

_LIVE = ("running", "paused", "restarting")  # Docker's Running: restarting counts (its monitor lives)

# Made in the writable layer as mount points for the files berth binds (Docker
# keeps them in a hidden "init" layer): not part of diff or commit.
_MOUNT_POINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/sbin/docker-init")

# Bookkeeping kept in the state column but not shown by inspect.
_PRIVATE_STATE = ("PidStart", "MonitorPid", "MonitorStart", "RestartCount", "ManuallyStopped", "ExitOnNext",
                  "PausedBy")


def alive(pid: int, start: int | None) -> bool:
    """Whether `pid` is still the process that had start time `start`."""
    return bool(pid) and start is not None and proc_start(pid) == start


class Container(Record):
    """A container as the store holds it: config and host_config are
    inspect's Config and HostConfig, state its State."""

    REQUIRED = ("id", "name", "image_id", "image", "created", "driver", "config", "host_config", "state",
                "network", "mounts")

    @classmethod
    def from_row(cls, row) -> "Container":
        return cls(
            id=row["id"], name=row["name"], image_id=row["image_id"], image=row["image"], created=row["created"],
            driver=row["driver"], config=loads(row["config"]), host_config=loads(row["host_config"]),
            state=loads(row["state"]), network=loads(row["network"]), mounts=loads(row["mounts"]),
        )

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def status(self) -> str:
        return self.state.get("Status", "created")

    @property
    def running(self) -> bool:
        return self.status in _LIVE

    @property
    def pid(self) -> int:
        return int(self.state.get("Pid") or 0)

    @property
    def command(self) -> list[str]:
        return list(self.config.get("Entrypoint") or []) + list(self.config.get("Cmd") or [])

    @property
    def network_mode(self) -> str:
        return self.host_config.get("NetworkMode") or "none"

    def attrs(self, **extra: str) -> dict[str, str]:
        """Event attributes Docker attaches to container events."""
        out = {k: str(v) for k, v in (self.config.get("Labels") or {}).items()}
        out.update(image=self.image, name=self.name)
        out.update(extra)
        return out


def initial_state() -> dict:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
        "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }


# -- names ---------------------------------------------------------------------

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave busy charming "
    "clever cool compassionate competent condescending confident cranky crazy dazzling determined distracted "
    "dreamy eager ecstatic elastic elated elegant eloquent epic fervent festive flamboyant focused friendly "
    "frosty gallant gifted goofy gracious happy hardcore heuristic hopeful hungry infallible inspiring "
    "jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous nice "
    "nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky quizzical "
    "relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet "
    "tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial "
    "youthful zealous zen"
).split()
_NOUNS = (
    "albattani allen almeida agnesi archimedes ardinghelli aryabhata austin babbage banach bardeen bartik "
    "bassi beaver bell benz bhabha bhaskara black blackwell bohr booth borg bose boyd brahmagupta brattain "
    "brown carson cartwright chandrasekhar chaplygin chatelet chatterjee chebyshev cohen chaum clarke "
    "colden cori cray curran curie darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky "
    "easley edison einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat "
    "fermi feynman franklin gagarin galileo galois ganguly gates gauss germain goldberg goldstine goldwasser "
    "golick goodall gould greider grothendieck haibt hamilton haslett hawking hellman heisenberg hermann "
    "herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia ishizaka jackson jang jemison "
    "jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller kepler khayyam khorana kilby "
    "kirch knuth kowalevski lalande lamarr lamport leakey leavitt lederberg lehmann lewin lichterman "
    "liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclaren mclean "
    "mcnulty meitner mendel mendeleev meninsky merkle mestorf mirzakhani montalcini moore morse moser "
    "murdock napier nash neumann newton nightingale nobel noether northcutt noyce panini pare pascal "
    "pasteur payne perlman pike poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride "
    "ritchie robinson roentgen rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley "
    "shockley shtern sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles taussig "
    "tesla tharp thompson torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff "
    "wilbur wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def random_name() -> str:
    """Docker-style `adjective_scientist`."""
    return f"{random_choice(_ADJECTIVES)}_{random_choice(_NOUNS)}"


def check_name(name: str) -> str:
    """Validate a user-given name; return it without a leading slash."""
    if not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def name_conflict(name: str, holder: str) -> Conflict:
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{holder}". '
                    "You have to remove (or rename) that container to be able to reuse that name.")


# -- options of create ----------------------------------------------------------


class CreateOptions(Record):
    """Everything `berth create/run` accepts, already parsed."""

    REQUIRED = ("image",)
    FIELDS = {
        "command": [], "name": None, "entrypoint": None, "env": [], "env_files": [], "workdir": None,
        "user": None, "hostname": None, "labels": {}, "tty": False,
        "console_size": None,  # rows, cols of the caller's terminal, for -t
        "interactive": False,
        "attach": [],  # STDIN/STDOUT/STDERR for foreground
        "detach": False, "auto_remove": False, "read_only": False, "memory": None, "memory_swap": None,
        "cpus": None, "pids_limit": None, "log_driver": None, "log_opts": {}, "network": None, "restart": "no",
        "stop_signal": None, "stop_timeout": None, "cap_add": [], "cap_drop": [],
        "mounts": [],  # from berth.core.containers.mounts (volume seam)
        "shm_size": None,
        "publish": [],  # -p (network seam: berth.core.networks.ports)
        "publish_all": False,  # -P
        "expose": [],  # --expose
        "links": [],  # --link NAME[:ALIAS]
        "host_config": {},  # HostConfig fields of the other flags, checked (berth.core.containers.hostconfig)
        "platform": None,  # --platform os/arch[/variant]: the image must be of it
        "endpoint": {},  # --ip/--network-alias/--mac-address: EndpointSettings on the primary network
        "healthcheck": None,  # Config.Healthcheck of --health-*/--no-healthcheck (berth.core.containers.health)
        "warnings": [],  # filled by create: what Docker accepts with a warning (the CLI prints them)
    }


def parse_env_file(path: str) -> list[str]:
    """Docker's --env-file: KEY=VALUE lines, # comments, bare KEY taken from our environment."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower()}") from None
    out = []
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Image env, then the user's; a bare KEY takes the host's value or is dropped."""
    env: dict[str, str] = {}
    for item in base:
        key, _, value = item.partition("=")
        env[key] = value
    for item in overrides:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if not sep:
            if key in os.environ:
                env[key] = os.environ[key]
            else:
                env.pop(key, None)
            continue
        env[key] = value
    return [f"{k}={v}" for k, v in env.items()]


def parse_restart(text: str) -> dict:
    """--restart as Docker 28's CLI parses it and its daemon validates it (the same messages)."""
    name, colon, count = (text or "no").partition(":")
    if colon and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise InvalidArgument("invalid restart policy format: maximum retry count must be an integer") from None
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', "
                              "'on-failure', or 'unless-stopped'")
    if name != "on-failure" and retries:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'"
                              + (" and cannot be negative" if retries < 0 else ""))
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def restarts_at_boot(container: Container) -> bool:
    """Whether Docker's daemon, starting, restarts this stopped container: one started
    before, whose policy is always, unless-stopped (unless the user stopped it) or
    on-failure (a failure, with retries left)."""
    state = container.state
    if container.running or state.get("StartedAt", ZERO_TIME) == ZERO_TIME:
        return False
    policy = container.host_config.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"  # "" in berth's records before Docker 25's "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not state.get("ManuallyStopped")
    if name == "on-failure":
        retries = int(policy.get("MaximumRetryCount") or 0)
        return state.get("ExitCode") != 0 and (not retries or int(state.get("RestartCount") or 0) < retries)
    return False


def restarting_error(container: Container) -> Conflict:
    return Conflict(f"Container {container.id} is restarting, wait until the container is running")


def signal_number(sig: str | int | None, default: int = signals.SIGTERM) -> int:
    """"SIGTERM", "TERM", "15" -> 15, as Docker's signal.ParseSignal."""
    if sig is None or sig == "":
        return default
    if isinstance(sig, int):
        return sig
    text = str(sig).strip().upper()
    if text.isdigit():
        number = int(text)
        if not 0 < number < 65:
            raise InvalidArgument(f"Invalid signal: {sig}")
        return number
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(getattr(signals.Signals, text))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {sig}") from None


# -- listing -------------------------------------------------------------------------------


def status_text(c) -> str:
    """`ps`'s STATUS column: "Up 2 minutes", "Exited (0) 3 seconds ago", "Created"."""
    import datetime as _dt

    from berth.core.plumbing.units import ago, human_duration, parse_time

    status = c.status
    if status in ("running", "paused"):
        started = parse_time(c.state["StartedAt"])
        up = human_duration((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds())
        if status == "paused":
            return f"Up {up} (Paused)"
        health = (c.state.get("Health") or {}).get("Status")
        if health:
            return f"Up {up} ({'health: starting' if health == 'starting' else health})"
        return f"Up {up}"
    if status == "restarting":
        return f"Restarting ({c.state.get('ExitCode', 0)}) {ago(c.state['FinishedAt'])}"
    if status == "exited":
        return f"Exited ({c.state.get('ExitCode', 0)}) {ago(c.state['FinishedAt'])}"
    if status == "dead":
        return "Dead"
    return "Created"


PS_FILTERS = ("name", "id", "status", "exited", "label", "ancestor")


def check_filters(filters: dict[str, list[str]]) -> None:
    """InvalidArgument for a `ps --filter` key `matches` does not know (before any container is looked at)."""
    for key in filters:
        if key not in PS_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")


def matches(engine, c, filters: dict[str, list[str]]) -> bool:
    """Whether container `c` passes `ps --filter` (Docker's keys; InvalidArgument for another)."""
    import re

    for key, values in filters.items():
        if key == "name":
            if not any(re.search(v.lstrip("/"), c.name) for v in values):
                return False
        elif key == "id":
            if not any(c.id.startswith(v) for v in values):
                return False
        elif key == "status":
            for v in values:
                if v not in ("created", "restarting", "running", "removing", "paused", "exited", "dead"):
                    raise InvalidArgument(f"invalid filter 'status={v}'")
            if c.status not in values:
                return False
        elif key == "exited":
            if c.status != "exited" or str(c.state.get("ExitCode")) not in values:
                return False
        elif key == "label":
            if not all(label_match(c.config.get("Labels") or {}, v) for v in values):
                return False
        elif key == "ancestor":
            if not any(_is_ancestor(engine, c, v) for v in values):
                return False
        elif key == "health":
            from berth.core.containers.health import STATUSES, status_of

            for v in values:
                if v not in STATUSES:
                    raise InvalidArgument(f"Unrecognised filter value for health: {v}")
            if status_of(c.state) not in values:
                return False
        elif key in ("before", "since"):
            for v in values:
                other = engine.containers.get(v)  # NotFound: Docker's "No such container"
                if (c.created >= other.created) if key == "before" else (c.created <= other.created):
                    return False
        elif key == "volume":
            if not any(v in (m.get("Name"), m.get("Source"), m.get("Destination")) for v in values for m in c.mounts):
                return False
        elif key == "network":
            joined = (c.network or {}).get("Networks") or {}
            ids = [e.get("NetworkID") or "" for e in joined.values()]
            if not any(v in joined or any(i and i.startswith(v) for i in ids) for v in values):
                return False
        elif key in ("publish", "expose"):
            wanted = set()
            for v in values:
                wanted |= _port_set(v)
            if not _port_set_of(c, published=key == "publish") & wanted:
                return False
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


def _port_set(spec: str) -> set[str]:
    """"80", "80/udp", "8000-8010/tcp" -> {"80/tcp", ...}, as Docker's publish/expose filters read them."""
    ports, _, proto = spec.partition("/")
    low, _, high = ports.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidArgument(f"Error parsing port range: {spec}") from None
    if not 0 < first <= last < 65536:
        raise InvalidArgument(f"Error parsing port range: {spec}")
    return {f"{n}/{proto or 'tcp'}" for n in range(first, last + 1)}


def _port_set_of(c, published: bool) -> set[str]:
    """The container's published host ports, or its exposed (private) ports, as "N/proto"."""
    ports = (c.network or {}).get("Ports") or {}
    if published:
        return {f"{b.get('HostPort')}/{private.partition('/')[2] or 'tcp'}"
                for private, bindings in ports.items() for b in bindings or [] if b.get("HostPort")}
    return {p if "/" in p else p + "/tcp" for p in (*ports, *(c.config.get("ExposedPorts") or {}))}


def _is_ancestor(engine, c, ref: str) -> bool:
    if c.image == ref:
        return True
    try:
        wanted = engine.images.find_id(ref)
    except BerthError:
        return False
    if wanted is None:
        return False
    image_id = c.image_id
    while image_id:  # the container's image or any image it was built from
        if image_id == wanted:
            return True
        row = engine.store.one("SELECT parent FROM images WHERE id = ?", (image_id,))
        image_id = row["parent"] if row else None
    return False


# -- the service -------------------------------------------------------------------


class ContainerService:
    """Every container operation; one instance per Engine (`engine.containers`)."""

    def __init__(self, engine):
        self.engine = engine

    @property
    def store(self):
        return self.engine.store

    def run_dir(self, container_id: str) -> Path:
        """runroot/containers/<id>: hostname, hosts, resolv.conf, attach.sock."""
        return self.engine.runroot / "containers" / container_id

    def log_dir(self, container_id: str) -> Path:
        return self.engine.root / "containers" / container_id

    def logs(self, container: Container, *, follow: bool = False, since=None, until=None, tail: int | None = None,
             stop=None):
        """The container's log entries (berth.core.drivers.LogEntry) from its log
        driver; with `follow`, new ones until it stops running or `stop()` turns true."""
        import inspect as pyinspect

        from berth.core import plugins
        from berth.core.errors import Unsupported

        cfg = container.host_config.get("LogConfig") or {}
        cls = plugins.drivers("log").get(cfg.get("Type") or "json-file")
        if not getattr(cls, "readable", False):
            raise Unsupported("configured logging driver does not support reading")
        driver = cls(container.id, self.log_dir(container.id), cfg.get("Config") or {})
        kwargs = {"follow": follow and container.running, "since": since, "until": until, "tail": tail}
        if "stop" in pyinspect.signature(driver.read).parameters:
            def stopped() -> bool:
                if stop is not None and stop():
                    return True
                current = self.load(container.id)
                return current is None or not self.reconcile(current).running

            kwargs["stop"] = stopped
        return driver.read(**kwargs)

    # -- lookup --------------------------------------------------------------

    def _row(self, container_id: str):
        return self.store.one("SELECT * FROM containers WHERE id = ?", (container_id,))

    def find_id(self, ref: str) -> str:
        """Full ID, exact name, or unique ID prefix -> full ID (as Docker looks up)."""
        if not ref:
            raise NotFound("No such container: ")
        row = self.store.one("SELECT id FROM containers WHERE id = ?", (ref,))
        if row:
            return row["id"]
        row = self.store.one("SELECT id FROM containers WHERE name = ?", (ref.lstrip("/"),))
        if row:
            return row["id"]
        if re.fullmatch(r"[0-9a-f]{1,63}", ref):
            rows = self.store.all("SELECT id FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) == 1:
                return rows[0]["id"]
            if len(rows) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def load(self, container_id: str) -> Container | None:
        row = self._row(container_id)
        return Container.from_row(row) if row else None

    def get(self, ref: str) -> Container:
        """The container named by `ref`, its state reconciled with reality."""
        container = self.load(self.find_id(ref))
        if container is None:
            raise NotFound(f"No such container: {ref}")
        return self.reconcile(container)

    def list(self) -> list[Container]:
        """All containers, newest first, reconciled."""
        rows = self.store.all("SELECT * FROM containers ORDER BY created DESC")
        out = []
        for row in rows:
            c = self.reconcile(Container.from_row(row))
            if c is not None:
                out.append(c)
        return out

    # -- state ---------------------------------------------------------------------

    def update_state(self, container_id: str, **changes: Any) -> dict | None:
        """Atomically merge `changes` into the stored State; None when the row is gone."""
        with self.store.transaction() as db:
            row = db.execute("SELECT state FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                return None
            state = loads(row["state"])
            state.update(changes)
            db.execute("UPDATE containers SET state = ? WHERE id = ?", (dumps(state), container_id))
        return state

    def reconcile(self, container: Container) -> Container:
        """Make the stored state true: a dead running container becomes exited."""
        if not container.running:
            return container
        state = container.state
        if alive(state.get("MonitorPid", 0), state.get("MonitorStart")):
            holder = state.get("PausedBy")
            if container.status == "paused" and holder and not alive(*holder):
                try:  # paused by a commit that was killed: nobody will unpause it
                    return self._set_frozen(container, False)
                except FailedPrecondition:
                    pass
            return container  # the monitor watches it and will record the exit
        if alive(container.pid, state.get("PidStart")):
            return self._orphaned(container)
        self.release(container, exit_code=state.get("ExitCode") or UNKNOWN_EXIT,
                     error="the container's monitor process exited unexpectedly")
        return self.load(container.id) or container

    def _end_steady_monitor(self, container: Container) -> bool:
        """rm -f: a monitor in its steady state (berth.core.containers.steady) holds no lock
        and nothing of the store, only the output of a container about to be removed: it is
        killed rather than woken, so that the removal does not wait for it to re-execute into
        the full monitor (_orphaned then does what that would do). False: not in that state."""
        from berth.core.containers import steady

        state = container.state
        pid = state.get("MonitorPid", 0)
        if not (alive(pid, state.get("MonitorStart")) and steady.running(pid)):
            return False
        try:
            os.kill(pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        return True

    def _orphaned(self, container: Container) -> Container:
        """The monitor died, the container runs: kill it, so nothing runs unsupervised."""
        from berth.core.runtime.cgroups import Cgroup

        cgroup = Cgroup(CGROUP_PARENT, container.id)
        try:
            cgroup.kill(signals.SIGKILL)
            if cgroup.is_frozen():
                cgroup.thaw()
        except OSError:
            pass
        try:
            os.kill(container.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while alive(container.pid, container.state.get("PidStart")) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.release(container, exit_code=KILLED_EXIT, error="the container's monitor process exited unexpectedly")
        return self.load(container.id) or container

    def release(self, container: Container, *, exit_code: int, error: str = "", oom: bool = False,
                die: bool = True) -> bool:
        """Record the exit and free what a running container holds (once).

        Called by the monitor when the process exits and by reconcile when the
        monitor is gone. Returns False if someone else already did it. `die`:
        emit the die event (a restarting container's monitor emitted it already).
        """
        from berth.core.runtime.cgroups import Cgroup

        with self.engine.lock(f"container-{container.id}"):
            current = self.load(container.id)
            if current is None or not current.running:
                return False
            self._release_resources(current)
            try:
                Cgroup(CGROUP_PARENT, container.id).remove()
            except OSError:
                pass
            stopped = self.update_state(
                container.id, Status="exited", Running=False, Paused=False, Restarting=False, Pid=0, ExitCode=exit_code,
                Error=error, FinishedAt=now_iso(), OOMKilled=oom, PidStart=None, MonitorPid=0, MonitorStart=None,
            )
        if die:
            self.engine.emit("container", "die", container.id, container.attrs(exitCode=str(exit_code)))
        current.state.clear()
        current.state.update(stopped or {})  # the hook sees the container as it is now: exited
        self.engine.hook("container_post_stop", container=current)
        return True

    def _release_resources(self, container: Container) -> None:
        """Network, volumes, a shareable /dev/shm and the union mount of a container that stopped."""
        shm = self.run_dir(container.id) / "shm"
        if os.path.ismount(shm):
            from berth.core.runtime import syscalls

            try:
                syscalls.umount2(str(shm), syscalls.MNT_DETACH)
            except OSError:
                pass
        try:
            self.engine.networks.detach(container)
        except BerthError:
            pass
        try:
            self.engine.volumes.release(container)
        except BerthError:
            pass
        try:
            self.storage_for(container).unmount(container.id)
        except BerthError:
            pass

    def storage_for(self, container: Container):
        if container.driver != self.engine.storage_driver_name:
            raise FailedPrecondition(
                f"container {container.short_id} uses storage driver {container.driver}, "
                f"but berth runs with {self.engine.storage_driver_name}")
        return self.engine.storage

    # -- create --------------------------------------------------------------

    def create(self, opts: CreateOptions, image=None) -> Container:
        """Make a container: the row (its name reserved by the UNIQUE constraint) then its writable layer."""
        engine = self.engine
        if image is None:
            image = engine.images.get(opts.image)
        config, host_config = self._merge_config(opts, image)
        container_id = random_hex(32)
        config["Hostname"] = opts.hostname or container_id[:12]
        if "host" in (host_config["NetworkMode"], host_config.get("UTSMode")) and not opts.hostname:
            config["Hostname"] = os.uname().nodename
        elif host_config["NetworkMode"].startswith("container:") and not opts.hostname:
            # Docker: a container joining another's network takes its host and domain names
            other = self.get(host_config["NetworkMode"].split(":", 1)[1]).config
            config["Hostname"], config["Domainname"] = other.get("Hostname", ""), other.get("Domainname", "")
        name = check_name(opts.name) if opts.name else None
        row = {
            "id": container_id, "image_id": image.id, "image": opts.image, "created": now_iso(),
            "driver": engine.storage_driver_name, "config": dumps(config), "host_config": dumps(host_config),
            "state": dumps(initial_state()), "mounts": dumps(opts.mounts or []),
            "network": dumps(engine.networks.endpoint_settings(host_config, opts.endpoint, container_id)),
        }
        for attempt in range(20):
            row["name"] = name or random_name() + ("" if attempt < 10 else str(random_choice(range(100))))
            try:
                with self.store.transaction() as db:
                    db.execute(
                        "INSERT INTO containers (id, name, image_id, image, created, driver, config, host_config,"
                        " state, mounts, network) VALUES (:id, :name, :image_id, :image, :created, :driver, :config,"
                        " :host_config, :state, :mounts, :network)", row)
                break
            except sqlite3.IntegrityError:
                if name:
                    holder = self.store.one("SELECT id FROM containers WHERE name = ?", (name,))
                    raise name_conflict(name, holder["id"] if holder else "") from None
        else:
            raise Conflict("could not find a free container name")
        try:
            parent = engine.images.top_cache_id(image)
            self.storage_for(self.load(container_id)).create_rw(container_id, parent)
            engine.volumes.ensure(opts.mounts or [])  # Docker makes named volumes at create
        except BaseException:
            with self.store.transaction() as db:
                db.execute("DELETE FROM containers WHERE id = ?", (container_id,))
            try:
                engine.storage.remove(container_id)
            except Exception:
                pass
            raise
        container = self.load(container_id)
        engine.emit("container", "create", container.id, container.attrs())
        engine.hook("container_created", container=container)
        return container

    def _merge_config(self, opts: CreateOptions, image) -> tuple[dict, dict]:
        """Docker's rules: image config under the user's flags."""
        from berth.core import plugins

        icfg = image.config.get("config") or {}
        env = merge_env(list(icfg.get("Env") or []), [e for f in opts.env_files for e in parse_env_file(f)] + opts.env)
        if opts.entrypoint is not None:  # a string from --entrypoint, a list from the Engine API
            given = opts.entrypoint
            entrypoint = ([given] if given else []) if isinstance(given, str) else list(given)  # "" resets
            entrypoint = entrypoint or None
            cmd = list(opts.command) or None
        else:
            entrypoint = icfg.get("Entrypoint") or None
            cmd = list(opts.command) or icfg.get("Cmd") or None
        if not (entrypoint or cmd):
            raise InvalidArgument("No command specified")
        attach = [a.upper() for a in opts.attach]
        for a in attach:
            if a not in ("STDIN", "STDOUT", "STDERR"):
                raise InvalidArgument(f"invalid argument \"{a.lower()}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR")
        if opts.detach:
            if attach:
                raise InvalidArgument("Conflicting options: -a and -d")
            attach_in = attach_out = attach_err = False
        elif attach:
            attach_in, attach_out, attach_err = ("STDIN" in attach, "STDOUT" in attach, "STDERR" in attach)
        else:
            attach_in, attach_out, attach_err = opts.interactive, True, True
        labels = dict(icfg.get("Labels") or {})
        labels.update(opts.labels)
        config = {
            "Hostname": "", "Domainname": "", "User": opts.user if opts.user is not None else icfg.get("User", ""),
            "AttachStdin": attach_in, "AttachStdout": attach_out, "AttachStderr": attach_err,
            "Tty": opts.tty, "OpenStdin": opts.interactive, "StdinOnce": opts.interactive and not opts.detach,
            "Env": env, "Cmd": cmd, "Image": opts.image, "Volumes": icfg.get("Volumes"),
            "WorkingDir": opts.workdir if opts.workdir is not None else icfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint, "OnBuild": None, "Labels": labels,
        }
        if opts.healthcheck or icfg.get("Healthcheck"):
            from berth.core.containers import health

            config["Healthcheck"] = health.merge(opts.healthcheck, icfg.get("Healthcheck"))
        stop_signal = opts.stop_signal or icfg.get("StopSignal")
        if stop_signal:
            signal_number(stop_signal)
            config["StopSignal"] = stop_signal
        if opts.stop_timeout is not None:
            config["StopTimeout"] = opts.stop_timeout
        if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
            raise InvalidArgument(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an absolute path")
        log_type = opts.log_driver or self.engine.config.get("logging.driver")
        log_opts = dict(self.engine.config.get("logging.options") or {}) if not opts.log_driver else {}
        log_opts.update(opts.log_opts)
        log_drivers = plugins.drivers("log")
        if log_drivers.names() or opts.log_driver:  # no logging plugin installed at all: no logs
            log_drivers.supported(log_type).validate_options(log_opts)
        network = opts.network or self._default_network()
        if opts.memory is not None and opts.memory and opts.memory < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if opts.cpus is not None and opts.cpus < 0:
            raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
        host_config = {
            "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": log_type, "Config": log_opts},
            "NetworkMode": network, "PortBindings": {}, "RestartPolicy": parse_restart(opts.restart),
            "ConsoleSize": list(opts.console_size or (0, 0)),
            "AutoRemove": opts.auto_remove, "VolumeDriver": "", "VolumesFrom": None,
            "CapAdd": opts.cap_add or None, "CapDrop": opts.cap_drop or None, "Dns": [], "DnsOptions": [],
            "DnsSearch": [], "ExtraHosts": None, "IpcMode": "private", "Privileged": False,
            "PublishAllPorts": False, "ReadonlyRootfs": opts.read_only, "SecurityOpt": None,
            "UTSMode": "", "ShmSize": opts.shm_size or 64 * 1024 * 1024, "Runtime": "berth",
            "Memory": opts.memory or 0, "MemorySwap": opts.memory_swap or 0,
            "NanoCpus": int((opts.cpus or 0) * 1e9), "PidsLimit": opts.pids_limit,
            "CgroupParent": "", "MaskedPaths": None, "ReadonlyPaths": None,
        }
        # -p/-P/--expose/--link into ExposedPorts, PortBindings, PublishAllPorts, Links
        if icfg.get("ExposedPorts"):
            config["ExposedPorts"] = dict(icfg["ExposedPorts"])
        self.engine.networks.apply_create_options(config, host_config, publish=opts.publish,
                                                  publish_all=opts.publish_all, expose=opts.expose, links=opts.links)
        self._host_options(opts, config, host_config, image_ports=icfg.get("ExposedPorts") or {})
        return config, host_config

    def _host_options(self, opts: CreateOptions, config: dict, host_config: dict, image_ports=()) -> None:
        """The flags of berth.core.containers.hostconfig: Docker's refusals raised, its warnings kept in
        opts.warnings; the containers whose namespaces this one joins must exist now."""
        from berth.core.containers import hostconfig

        host_config.update(opts.host_config)
        if opts.endpoint.get("MacAddress"):
            config["MacAddress"] = opts.endpoint["MacAddress"]
        opts.warnings = list(opts.warnings) + hostconfig.check_combinations(
            config, host_config, hostname_given=bool(opts.hostname), image_ports=image_ports)
        opts.warnings += hostconfig.discarded_security_opts(host_config.get("SecurityOpt"))
        for key in ("NetworkMode", "PidMode", "IpcMode"):
            mode = host_config.get(key) or ""
            if mode.startswith("container:"):
                self.get(mode.split(":", 1)[1])  # must exist now

    def _default_network(self) -> str:
        return self.engine.config.get("network.default")

    # -- start / stop ---------------------------------------------------------------

    def start(self, ref: str | Container, *, attach_wait: bool = False, standby=None) -> Container:
        """Start the container's monitor; return once the process runs.

        Raises the runtime's StartError/CommandNotFound/CommandNotExecutable
        (Docker's 125/127/126) when the command cannot run. `standby`: see
        standby.spawn (the caller cancels it if this raises first).
        """
        from berth.core import plugins
        from berth.core.containers.standby import spawn

        container = self.get(ref) if isinstance(ref, str) else self.reconcile(ref)
        if container.status == "paused":
            raise FailedPrecondition("cannot start a paused container, try unpause instead")
        if container.running:
            return container
        try:
            plugins.call("container_pre_start", engine=self.engine, container=container)
        except BerthError:
            raise  # a *_pre_* hook may refuse the step
        except Exception as exc:  # a broken plugin must not block starts
            from berth.core.plumbing.log import get_logger

            get_logger("berth.container").warning("plugin hook failed", hook="container_pre_start", error=str(exc))
        spawn(self.engine, container, attach_wait=attach_wait, standby=standby)
        return self.load(container.id) or container

    def stop_signal(self, container: Container) -> int:
        return signal_number(container.config.get("StopSignal"), signals.SIGTERM)

    def kill(self, ref: str | Container, sig: str | int | None = "KILL", *, emit: bool = True) -> Container:
        """Send a signal to the container's PID 1 (Docker's `kill`)."""
        container = self.get(ref) if isinstance(ref, str) else ref
        number = signal_number(sig, signals.SIGKILL)
        if not container.running:
            raise FailedPrecondition(f"Cannot kill container: {ref if isinstance(ref, str) else container.id}: "
                                     f"Container {container.id} is not running")
        if emit:
            self.engine.emit("container", "kill", container.id, container.attrs(signal=str(number)))
        container = self._stopped_by_user(container, number)
        self._signal(container, number)
        self._wake_monitor(container)
        return container

    def _stopped_by_user(self, container: Container, number: int) -> Container:
        """Docker's kill: the restart policy's unless-stopped no longer applies, and the
        stop signal or SIGKILL ends the container for good (its monitor restarts it no more).
        Under the container's lock: the monitor checks these before each restart."""
        final = number in (signals.SIGKILL, self.stop_signal(container))
        with self.engine.lock(f"container-{container.id}"):
            changes = {"ManuallyStopped": True}
            if final:
                changes["ExitOnNext"] = True
            self.update_state(container.id, **changes)
            return self.load(container.id) or container

    def _wake_monitor(self, container: Container) -> None:
        """A restarting container's monitor waits out its back-off: wake it to see the change."""
        state = container.state
        if container.status == "restarting" and alive(state.get("MonitorPid", 0), state.get("MonitorStart")):
            try:
                os.kill(state["MonitorPid"], signals.SIGUSR1)
            except ProcessLookupError:
                pass

    def _signal(self, container: Container, number: int) -> None:
        from berth.core.runtime.cgroups import Cgroup

        if not alive(container.pid, container.state.get("PidStart")):
            return
        if number == signals.SIGKILL:
            try:
                Cgroup(CGROUP_PARENT, container.id).kill(signals.SIGKILL)
            except OSError:
                pass
        try:
            os.kill(container.pid, number)
        except ProcessLookupError:
            pass
        if container.status == "paused" and number == signals.SIGKILL:
            try:
                Cgroup(CGROUP_PARENT, container.id).thaw()
            except (OSError, TimeoutError):
                pass

    def wait_exit(self, container: Container, timeout: float | None = None, *,
                  next_exit: bool = False) -> Container | None:
        """Block until the container is no longer running (or `timeout`); None if it was removed.
        `next_exit`: also return when its process exits and its restart policy restarts it
        (Docker's `wait`: "restarting" after a newer exit than the one it started from)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        finished = container.state.get("FinishedAt")
        while True:
            current = self.load(container.id)
            if current is None:
                return None
            current = self.reconcile(current)
            if not current.running:
                return current
            if next_exit and current.status == "restarting" and current.state.get("FinishedAt") != finished:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                return current
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def stop(self, ref: str | Container, timeout: int | None = None) -> Container:
        """Stop signal, then SIGKILL after `timeout` seconds (default 10 or the container's StopTimeout)."""
        container = self.get(ref) if isinstance(ref, str) else ref
        if not container.running:
            return container  # as Docker: stopping a stopped container succeeds
        if timeout is None:
            timeout = container.config.get("StopTimeout", 10)
        sig = self.stop_signal(container)
        if container.status == "paused":
            self.kill(container, signals.SIGKILL)
        else:
            self.kill(container, sig)
            after = self.wait_exit(container, timeout if timeout >= 0 else None)
            if after is not None and after.running:
                self.kill(container, signals.SIGKILL)
        after = self.wait_exit(container, 30)
        self.engine.emit("container", "stop", container.id, container.attrs())
        return after or container

    def restart(self, ref: str, timeout: int | None = None) -> Container:
        container = self.stop(ref, timeout)
        container = self.start(container)
        self.engine.emit("container", "restart", container.id, container.attrs())
        return container

    # HostConfig fields `update` may change (Docker's UpdateConfig: resources and the restart policy).
    UPDATABLE = ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "PidsLimit", "CpusetCpus", "MemoryReservation",
                 "RestartPolicy")

    def update(self, ref: str, changes: dict) -> Container:
        """Change a container's resources (applied to a running one's cgroup at once) or restart
        policy; `changes`: HostConfig fields of UPDATABLE."""
        from berth.core.containers.monitor import resource_limits
        from berth.core.runtime.cgroups import Cgroup, Limits

        unknown = sorted(set(changes) - set(self.UPDATABLE))
        if unknown:
            raise InvalidArgument(f"cannot update {', '.join(unknown)}")
        if changes.get("Memory") and changes["Memory"] < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if "RestartPolicy" in changes:
            policy = changes["RestartPolicy"] or {}
            name, count = policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0
            changes["RestartPolicy"] = parse_restart(f"{name}:{count}" if count else name)
        container = self.get(ref)
        with self.engine.lock(f"container-{container.id}"):
            with self.store.transaction() as db:
                row = db.execute("SELECT host_config FROM containers WHERE id = ?", (container.id,)).fetchone()
                host_config = loads(row["host_config"])
                host_config.update(changes)
                db.execute("UPDATE containers SET host_config = ? WHERE id = ?", (dumps(host_config), container.id))
            container = self.load(container.id)
            if container.running and set(changes) - {"RestartPolicy"}:
                hc = container.host_config
                try:
                    Cgroup(CGROUP_PARENT, container.id).set_limits(Limits(
                        **resource_limits(hc), cpu_shares=hc.get("CpuShares") or None,
                        cpuset_cpus=hc.get("CpusetCpus") or None,
                        memory_reservation=hc.get("MemoryReservation") or None))
                except OSError as exc:
                    raise FailedPrecondition(f"Cannot update container {container.id}: {exc}") from None
        self.engine.emit("container", "update", container.id, container.attrs())
        return container

    def pause(self, ref: str, *, for_this_process: bool = False) -> Container:
        """`for_this_process`: a pause this command undoes (commit's); if the command
        dies first, the next command that looks at the container thaws it."""
        container = self.get(ref)
        if container.status == "restarting":
            raise restarting_error(container)
        if container.status == "paused":
            raise FailedPrecondition(f"Container {container.id} is already paused")
        if not container.running:
            raise FailedPrecondition(f"Container {container.id} is not running")
        holder = [os.getpid(), proc_start(os.getpid())] if for_this_process else None
        return self._set_frozen(container, True, PausedBy=holder)

    def unpause(self, ref: str) -> Container:
        container = self.get(ref)
        if container.status != "paused":
            raise FailedPrecondition(f"Container {container.id} is not paused")
        return self._set_frozen(container, False)

    def _set_frozen(self, container: Container, frozen: bool, PausedBy=None) -> Container:  # noqa: N803
        """Freeze (pause) or thaw (unpause) every process of the container."""
        from berth.core.runtime.cgroups import Cgroup

        action = "pause" if frozen else "unpause"
        cgroup = Cgroup(CGROUP_PARENT, container.id)
        try:
            cgroup.freeze() if frozen else cgroup.thaw()
        except (OSError, TimeoutError) as exc:
            raise FailedPrecondition(f"Cannot {action} container {container.id}: {exc}") from None
        self.update_state(container.id, Status="paused" if frozen else "running", Paused=frozen, PausedBy=PausedBy)
        self.engine.emit("container", action, container.id, container.attrs())
        return self.load(container.id)

    # -- remove / rename --------------------------------------------------------------

    def remove(self, ref: str | Container, *, force: bool = False, volumes: bool = False) -> str:
        """`berth rm`: kill (with force), delete the writable layer, then the row."""
        container = self.get(ref) if isinstance(ref, str) else ref
        for attempt in (1, 2, 3):  # with force, a monitor that started it meanwhile is outrun
            if container.running:
                if not force:
                    if container.status == "paused":
                        raise Conflict(f"cannot remove container \"/{container.name}\": container is paused and "
                                       "must be unpaused first")
                    raise Conflict(f"cannot remove container \"/{container.name}\": container is running: stop "
                                   "the container before removing or force remove")
                if self._end_steady_monitor(container):
                    self.engine.emit("container", "kill", container.id, container.attrs(signal="9"))
                    self._orphaned(container)
                else:
                    self.kill(container, signals.SIGKILL, emit=True)
                    self.wait_exit(container, 30)
            lock = self.engine.lock(f"container-{container.id}")
            with lock:
                current = self.load(container.id)
                if current is None:
                    return container.id  # someone else (the monitor of a --rm container) did it
                if not current.running:
                    self._remove_stopped(current, volumes)
                    break
            if not force or attempt == 3:
                raise Conflict(f"cannot remove container \"/{container.name}\": container is running")
            container = current
        self.engine.emit("container", "destroy", current.id, current.attrs())
        self.engine.hook("container_removed", container_id=current.id)
        return current.id

    def _remove_stopped(self, current: Container, volumes: bool) -> None:
        """Delete a stopped container's layer, volumes (anonymous, if asked), row, files
        and lock file; the caller holds that lock."""
        import shutil

        self.storage_for(current).remove(current.id)
        if volumes or current.host_config.get("AutoRemove"):
            try:
                self.engine.volumes.remove_anonymous(current.id, current.mounts)
            except BerthError:
                pass
        with self.store.transaction() as db:
            db.execute("DELETE FROM containers WHERE id = ?", (current.id,))
        shutil.rmtree(self.run_dir(current.id), ignore_errors=True)
        shutil.rmtree(self.log_dir(current.id), ignore_errors=True)
        self.engine.forget_lock(f"container-{current.id}")

    def rename(self, ref: str, new_name: str) -> None:
        container = self.get(ref)
        new_name = new_name.lstrip("/")
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        check_name(new_name)
        if new_name == container.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        try:
            with self.store.transaction() as db:
                db.execute("UPDATE containers SET name = ? WHERE id = ?", (new_name, container.id))
        except sqlite3.IntegrityError:
            holder = self.store.one("SELECT id FROM containers WHERE name = ?", (new_name,))
            raise name_conflict(new_name, holder["id"] if holder else "") from None
        old = container.name
        container.name = new_name
        self.engine.emit("container", "rename", container.id, container.attrs(oldName="/" + old))

    # -- presentation ---------------------------------------------------------------

    def inspect(self, container: Container) -> dict:
        """Docker-shaped `inspect` JSON."""
        etc = self.run_dir(container.id)
        if container.network_mode.startswith("container:"):  # the donor's files, which it shares (as Docker's)
            try:
                etc = self.run_dir(self.get(container.network_mode.split(":", 1)[1]).id)
            except BerthError:
                pass
        state = {k: v for k, v in container.state.items() if k not in _PRIVATE_STATE}
        graph = {}
        try:
            graph = self.storage_for(container).metadata(container.id)
        except BerthError:
            pass
        log_type = container.host_config.get("LogConfig", {}).get("Type", "")
        log_path = ""
        if log_type == "json-file":
            log_path = str(self.log_dir(container.id) / f"{container.id}-json.log")
        from berth.core.containers.mounts import public

        mounts = [public(m) for m in container.mounts]
        for m in mounts:
            if m.get("Type") == "volume" and not m.get("Source"):  # Docker shows the volume's _data
                m["Source"] = self.engine.volumes.mountpoint(m["Name"])
        network = {"Bridge": "", "SandboxID": "", "HairpinMode": False, "Ports": {}, "SandboxKey": "",
                   "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "", "Networks": {}}
        network.update(container.network or {})
        cmd = container.command
        return {
            "Id": container.id,
            "Created": container.created,
            "Path": cmd[0] if cmd else "",
            "Args": cmd[1:],
            "State": state,
            "Image": container.image_id,
            "ResolvConfPath": str(etc / "resolv.conf"),
            "HostnamePath": str(etc / "hostname"),
            "HostsPath": str(etc / "hosts"),
            "LogPath": log_path,
            "Name": "/" + container.name,
            "RestartCount": int(container.state.get("RestartCount") or 0),
            "Driver": container.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": container.host_config,
            "GraphDriver": {"Name": container.driver, "Data": graph},
            "Mounts": mounts,
            "Config": container.config,
            "NetworkSettings": network,
        }

    # -- exec ---------------------------------------------------------------------------

    def exec_spec(self, container: Container, command: list[str], *, env=(), env_files=(), workdir=None, user=None,
                  tty: bool = False, privileged: bool = False):
        """The ProcessSpec of `exec` in a running container (its stdio still to be set);
        emits exec_create."""
        from berth.core.containers.hostconfig import process_settings
        from berth.core.runtime.spec import ProcessSpec

        if container.status == "paused":
            raise FailedPrecondition(f"Container {container.id} is paused, unpause the container before exec")
        if container.status == "restarting":
            raise FailedPrecondition(f"Container {container.id} is restarting, wait until the container is running")
        if not container.running:
            raise FailedPrecondition(f"Container {container.id} is not running")

        cfg = container.config
        extra = [e for f in env_files for e in parse_env_file(f)] + list(env)
        settings = process_settings(container.host_config)  # the container's capabilities, seccomp, groups, ulimits
        if privileged:
            settings.update(cap_add=["ALL"], seccomp=False)
        own = [f"HOSTNAME={cfg.get('Hostname') or container.id[:12]}"] + (["TERM=xterm"] if tty else [])  # as Docker's
        spec = ProcessSpec(args=list(command), env=merge_env(own + list(cfg.get("Env") or []), extra),
                           cwd=workdir or cfg.get("WorkingDir") or "/",
                           user=user if user is not None else cfg.get("User", ""), tty=tty, **settings)
        self.engine.emit("container", f"exec_create: {' '.join(command)}", container.id, container.attrs())
        return spec

    def exec_start(self, container: Container, spec) -> int:
        """Start `spec` in the container's namespaces and cgroup; its host PID (a child of ours)."""
        from berth.core.runtime import process
        from berth.core.runtime.cgroups import Cgroup

        pid = process.exec_process(container.pid, spec, Cgroup(CGROUP_PARENT, container.id))
        self.engine.emit("container", f"exec_start: {' '.join(spec.args)}", container.id,
                         container.attrs(execID=str(pid)))
        return pid

    def exec_wait(self, container: Container, spec, pid: int) -> int:
        """Reap an exec'd process; its exit code (128+N for a signal). Emits exec_die."""
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
        self.engine.emit("container", "exec_die", container.id, container.attrs(execID=str(pid), exitCode=str(code)))
        return code

    # -- filesystem ---------------------------------------------------------------

    def changes(self, ref: str):
        """A/C/D of the writable layer, without the mount points berth itself made."""
        container = self.get(ref)
        return [c for c in self.storage_for(container).changes(container.id)
                if not (c.kind == "A" and c.path in _MOUNT_POINTS)]

    def export_layer(self, container: Container, discard_under: tuple[str, ...] = ()):
        """The container's writable layer as a layer blob in the content store (without the
        mount points berth made, nor what lies under the directories `discard_under`);
        returns its images.image.Layer. The caller holds the "gc" lock shared until an image
        references the blob."""
        import tempfile

        from berth.core.images.image import Layer
        from berth.core.oci.content import HashingWriter
        from berth.core.oci.mediatypes import OCI_LAYER

        with tempfile.NamedTemporaryFile(dir=self.engine.root, prefix=".commit-") as raw, \
                tempfile.NamedTemporaryFile(dir=self.engine.root, prefix=".commit-") as tmp:
            self.storage_for(container).export_diff(container.id, raw)
            raw.flush()
            raw.seek(0)
            sink = HashingWriter(tmp)
            _without_mount_points(raw, sink, discard_under)
            tmp.flush()
            tmp.seek(0)
            digest, size = self.engine.content.put(tmp, expected=sink.digest)
        return Layer(digest, size, OCI_LAYER, digest)

    def commit(self, ref: str, *, repository: str | None = None, message: str = "", author: str = "",
               changes: list[str] = (), pause: bool = True):
        """A new image: the container's image layers plus its writable layer's diff."""
        import json

        from berth.core.images.dockerfile import apply_changes
        from berth.core.images.image import Layer
        from berth.core.oci import reference as refs
        from berth.core.oci.platform import arch

        container = self.get(ref)
        ref_obj = refs.parse(repository) if repository else None
        if ref_obj is not None and ref_obj.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        base = self.engine.images._load(container.image_id)
        paused_here = False
        if pause and container.status == "running":
            try:
                self.pause(container.id, for_this_process=True)
                paused_here = True
            except BerthError:
                pass
        try:
            layer = self.export_layer(container)
        finally:
            if paused_here:
                try:
                    self.unpause(container.id)
                except BerthError:
                    pass
        created = now_iso()
        cfg = dict(base.config.get("config") or {})
        # What the container runs becomes the image's defaults, as Docker's commit.
        for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
                    "StopSignal"):
            value = container.config.get(key)
            if value not in (None, "", [], {}):
                cfg[key] = value
            elif key in ("Cmd", "Entrypoint") and key in cfg and not value:
                cfg.pop(key)
        cfg = apply_changes(cfg, changes)
        history = list(base.config.get("history") or [])
        history.append({"created": created, "created_by": " ".join(container.command), "comment": message,
                        **({"author": author} if author else {})})
        layers = [Layer(l["digest"], l["size"], l["mediaType"], d)
                  for l, d in zip(base.manifest.get("layers", []), base.diff_ids)]
        layers.append(layer)
        config = {
            "architecture": base.config.get("architecture") or arch(),
            "os": base.config.get("os", "linux"),
            "created": created,
            "config": cfg,
            "container": container.id,
            "rootfs": {"type": "layers", "diff_ids": list(base.diff_ids) + [layer.diff_id]},
            "history": history,
        }
        if author:
            config["author"] = author
        image = self.engine.images.register(json.dumps(config, separators=(",", ":")).encode(), layers,
                                            tags=[ref_obj] if ref_obj else [], parent=base.id, action="commit")
        self.engine.emit("container", "commit", container.id, container.attrs(comment=message))
        return image

    def copy_from(self, ref: str, path: str, dest: str, *, follow: bool = False, stream_fd: int = 1,
                  other_end: int | None = None, on_fork=None) -> None:
        """`cp CTR:path dest` through the container's mounts (containers.copying); dest "-": a tar on
        `stream_fd` (stdout)."""
        from berth.core.containers import copying

        copying.copy_from(self, ref, path, dest, follow=follow, stream_fd=stream_fd, other_end=other_end,
                          on_fork=on_fork)

    def stat_path(self, ref: str, path: str) -> dict:
        """What `cp` learns of a path in the container first: Docker's PathStat (containers.copying)."""
        from berth.core.containers import copying

        return copying.stat_path(self, ref, path)

    def copy_to(self, ref: str, src: str, path: str, *, follow: bool = False, archive: bool = False,
                stream_fd: int = 0, other_end: int | None = None, on_fork=None) -> None:
        """`cp src CTR:path` through the container's mounts (containers.copying); src "-": a tar on
        `stream_fd` (stdin)."""
        from berth.core.containers import copying

        copying.copy_to(self, ref, src, path, follow=follow, archive=archive, stream_fd=stream_fd,
                        other_end=other_end, on_fork=on_fork)

    def mounted(self, container: Container):
        """Context manager: the container's root filesystem mounted (nested counts)."""
        import contextlib

        driver = self.storage_for(container)

        @contextlib.contextmanager
        def cm():
            root = driver.mount(container.id)
            try:
                yield Path(root)
            finally:
                driver.unmount(container.id)

        return cm()

    def top(self, ref: str) -> tuple[Container, list[int]]:
        """Host PIDs of every process of a running container."""
        from berth.core.runtime.cgroups import Cgroup

        container = self.get(ref)
        if not container.running:
            raise FailedPrecondition(f"Container {container.id} is not running")
        if container.status == "restarting":
            raise restarting_error(container)
        pids = Cgroup(CGROUP_PARENT, container.id).pids()
        return container, sorted(pids) or [container.pid]

    def prune(self, accept=None) -> list[str]:
        """Remove the stopped containers (that `accept(container)`, if given)."""
        removed = []
        for c in self.list():
            if c.status in ("exited", "created", "dead") and (accept is None or accept(c)):
                try:
                    removed.append(self.remove(c))
                except BerthError:
                    pass
        return removed


def recover_after_reboot(engine, store) -> None:
    """The run directory is empty: every running container is exited now (ExitCode 255)."""
    for row in store.all("SELECT id, state FROM containers"):
        state = loads(row["state"])
        if state.get("Status") not in _LIVE:
            continue
        _kill_leftovers(engine, row["id"], state)
        state.update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=UNKNOWN_EXIT,
                     FinishedAt=now_iso(), Error="the host rebooted", PidStart=None, MonitorPid=0,
                     MonitorStart=None)
        with store.transaction() as db:
            db.execute("UPDATE containers SET state = ? WHERE id = ?", (dumps(state), row["id"]))


def _kill_leftovers(engine, container_id: str, state: dict) -> None:
    """After a real reboot nothing is left; when only the run directory was
    wiped, the old monitor and container may live on: end them, unmount."""
    from berth.core.runtime.cgroups import Cgroup

    if alive(state.get("MonitorPid", 0), state.get("MonitorStart")):
        try:
            os.kill(state["MonitorPid"], signals.SIGKILL)
        except ProcessLookupError:
            pass
    cgroup = Cgroup(CGROUP_PARENT, container_id)
    try:
        if cgroup.exists():
            cgroup.kill(signals.SIGKILL)
            if cgroup.is_frozen():
                cgroup.thaw()
            cgroup.remove()
    except (OSError, TimeoutError):
        pass
    try:
        engine.storage.unmount(container_id)
    except Exception:  # the driver may be gone too; nothing is mounted after a reboot
        pass


def _without_mount_points(src, dst, discard_under: tuple[str, ...] = ()) -> None:
    """Copy a layer tar, dropping the empty mount-point files berth made, and whatever
    lies under the directories `discard_under` (absolute paths)."""
    import posixpath
    import tarfile

    names = {p.lstrip("/") for p in _MOUNT_POINTS}
    prefixes = tuple(posixpath.normpath(p).strip("/") + "/" for p in discard_under if p.strip("/"))
    with tarfile.open(fileobj=src, mode="r|") as tin, tarfile.open(fileobj=dst, mode="w|",
                                                                   format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if member.name.lstrip("./") in names and member.isfile() and member.size == 0:
                continue
            if prefixes and posixpath.normpath(member.name).lstrip("/").startswith(prefixes):
                continue
            tout.addfile(member, tin.extractfile(member) if member.isfile() else None)
