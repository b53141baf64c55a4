"""Names through DNS on user-defined networks, as Docker's embedded server answers them.

The resolver is dnsmasq (Debian's `dnsmasq-base`, /usr/sbin/dnsmasq): one
process per user-defined network with containers on it, started when the
first container joins the network and stopped when the last one leaves. It
listens on port 53 of the network's gateway address only (bound to it, so
several networks and installations never share a socket), which is the only
name server in those containers' resolv.conf. It answers, from a hosts file
of its own, each container's name, its network aliases, its short ID and its
hostname (EndpointSettings.DNSNames); plain names it does not know are "not
found" at once (--domain-needed: never sent upstream), other names go to the
host's servers (what /etc/resolv.conf names), as Docker's server forwards
them. The default bridge keeps Docker's behaviour: no names, links and
/etc/hosts.

Files: ``<runroot>/network/dns/<network id>/`` holds ``hosts``, ``dnsmasq.pid``
and ``dnsmasq.log``. Every change of a user network's members rewrites its
hosts file and sends SIGHUP, on which dnsmasq re-reads it and empties its
cache without touching its socket (aardvark-dns 1.4, Debian 12's, rebinds
its sockets on each reload, and queries in between went unanswered). All of
it under the "dns" lock, so concurrent commands never interleave; `stop()`
ends every one (reset, uninstall).
"""

from __future__ import annotations

import os
import signal
import time

from berth.core.plumbing.store import loads

PATHS = ("/usr/sbin/dnsmasq", "/sbin/dnsmasq")
PORT = 53
PID_FILE = "dnsmasq.pid"
_PREDEFINED = ("bridge", "host", "none")


def find() -> str | None:
    """The dnsmasq program of this host, or None."""
    import shutil

    for path in PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("dnsmasq")


def dns_names(name: str, container_id: str, hostname: str, aliases) -> list[str]:
    """Docker's EndpointSettings.DNSNames: the name, the aliases, the short ID, the hostname."""
    return list(dict.fromkeys(n for n in (name, *(aliases or ()), container_id[:12], hostname) if n))


class Resolver:
    """The name servers of the installation's user networks (`engine.networks.resolver`)."""

    def __init__(self, engine):
        self.engine = engine
        self.directory = engine.runroot / "network" / "dns"

    def sync(self) -> None:
        """Make each user network's hosts file say who is on it now; start, reload or
        stop its server to match. Best effort: a host without dnsmasq, or one that
        fails to start, leaves names to /etc/hosts (a warning in berth's log)."""
        with self.engine.lock("dns"):
            networks = self._networks()
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for network_id in os.listdir(self.directory):
                if network_id not in networks:
                    self._end(network_id)
            for network_id, (gateway, text) in networks.items():
                home = self.directory / network_id
                home.mkdir(mode=0o700, exist_ok=True)
                changed = _write(home / "hosts", text)
                pid = self._pid(network_id)
                if not pid:
                    self._start(network_id, gateway)
                elif changed:
                    os.kill(pid, signal.SIGHUP)  # re-reads the hosts file, empties its cache

    def stop(self) -> None:
        """End every server of the installation and forget its files (reset, uninstall)."""
        with self.engine.lock("dns"):
            if self.directory.is_dir():
                for network_id in os.listdir(self.directory):
                    self._end(network_id)
            prefix = os.fsencode(f"--pid-file={self.directory}/")
            for pid in _processes():  # one whose files are gone (a run directory wiped under it)
                if _serves(pid, prefix, exact=False):
                    _terminate(pid)

    def nameserver(self, network_names: list[str]) -> str | None:
        """The name server of a container on these networks: the gateway of its
        first user-defined one, when this host has dnsmasq; None otherwise."""
        for name in network_names:
            if name in _PREDEFINED or name.startswith("container:"):
                continue
            row = self.engine.store.one("SELECT gateway FROM networks WHERE name = ?", (name,))
            if row is not None and row["gateway"]:
                return row["gateway"] if find() else None
        return None

    # -- inside

    def _networks(self) -> dict[str, tuple[str, str]]:
        """network ID -> (gateway, hosts file) of every user network with containers on it."""
        rows = self.engine.store.all(
            "SELECT a.network_id, a.address, n.name AS network, n.gateway, c.id, c.name, c.config, c.network AS "
            "settings FROM ip_allocations a JOIN networks n ON n.id = a.network_id JOIN containers c ON "
            "c.id = a.container_id ORDER BY a.rowid")
        out: dict[str, tuple[str, list[str]]] = {}
        for row in rows:
            if row["network"] in _PREDEFINED or not row["gateway"]:
                continue
            endpoint = ((loads(row["settings"]) or {}).get("Networks") or {}).get(row["network"]) or {}
            hostname = (loads(row["config"]) or {}).get("Hostname") or ""
            names = dns_names(row["name"], row["id"], hostname, endpoint.get("Aliases"))
            out.setdefault(row["network_id"], (row["gateway"], []))[1].append(f"{row['address']}\t{' '.join(names)}")
        return {network_id: (gateway, "\n".join(lines) + "\n") for network_id, (gateway, lines) in out.items()}

    def _pid(self, network_id: str) -> int:
        """The PID of the network's running server (its PID file, checked against the process), or 0.
        Without the file (a run directory wiped under it), the process serving that directory."""
        marker = os.fsencode(f"--pid-file={self.directory / network_id / PID_FILE}")
        try:
            pid = int((self.directory / network_id / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return next((pid for pid in _processes() if _serves(pid, marker)), 0)
        return pid if _serves(pid, marker) else 0

    def _start(self, network_id: str, gateway: str) -> None:
        import subprocess

        program = find()
        if program is None:
            _warn("dnsmasq not found: containers on user-defined networks find each other through /etc/hosts "
                  "only (install the dnsmasq-base package)")
            return
        home = self.directory / network_id
        argv = [program, "--conf-file=/dev/null", "--no-hosts", f"--addn-hosts={home / 'hosts'}",
                f"--listen-address={gateway}", "--bind-interfaces", f"--port={PORT}", "--domain-needed",
                f"--pid-file={home / PID_FILE}", "--user=root", "--group=root", f"--log-facility={home / 'dnsmasq.log'}"]
        try:  # it binds, then forks: once this returns, it answers
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _warn(f"dnsmasq did not start: {exc}")
            return
        if done.returncode != 0:
            _warn(f"dnsmasq did not start: {done.stderr.decode(errors='replace').strip()}")

    def _end(self, network_id: str) -> None:
        """Stop the network's server and remove its files."""
        import shutil

        pid = self._pid(network_id)
        if pid:
            _terminate(pid)
        shutil.rmtree(self.directory / network_id, ignore_errors=True)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(pid):  # its port must be free for a next one
        time.sleep(0.005)


def _serves(pid: int, marker: bytes, exact: bool = True) -> bool:
    """Whether `pid` is a dnsmasq with this argument (`exact`) or one starting so."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    if os.path.basename(argv[0]) != b"dnsmasq":
        return False
    return marker in argv if exact else any(arg.startswith(marker) for arg in argv)


def _running(pid: int) -> bool:
    """Whether `pid` lives (a zombie waiting for its reaper does not: its sockets are closed)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _processes() -> list[int]:
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def _write(path, text: str) -> bool:
    """Write `text` unless the file holds it already; whether it changed."""
    from berth.core.plumbing import atomic

    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    atomic.write_text(path, text, 0o600)
    return True


def _warn(message: str) -> None:
    from berth.core.plumbing.log import get_logger

    get_logger("berth.dns").warning(message)
