"""Names through DNS on user-defined networks, as Docker's embedded server answers them.

The resolver is aardvark-dns, podman's (the Debian package `aardvark-dns`,
/usr/lib/podman/aardvark-dns): one process per berth installation, started
when the first container joins a user-defined network and stopped when the
last one leaves. It listens on port 53 of each network's gateway address,
which is the only name server in those containers' resolv.conf; it answers
a container's name, its short ID, its hostname and its network aliases
(EndpointSettings.DNSNames) to the containers of the same network only, and
forwards other names to the host's servers (what /etc/resolv.conf names).
The default bridge keeps Docker's behaviour: no names, links and /etc/hosts.

Its configuration is aardvark's own format, one file per network in
``<runroot>/network/dns/``: the first line the addresses to listen on (the
gateway), then ``<container id> <IPv4s> <IPv6s> <names>`` per container
(comma-separated lists); it writes its PID to ``aardvark.pid`` there. Every
change of a user network's members rewrites the files and starts a fresh
resolver, under the "dns" lock, so concurrent commands never interleave
(aardvark-dns 1.4, Debian 12's, rebinds its sockets on SIGHUP and could
leave queries unanswered); `stop()` ends it (reset, uninstall).
"""

from __future__ import annotations

import os
import signal
import time

from berth.core.plumbing.store import loads

PATHS = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns",
         "/usr/local/libexec/podman/aardvark-dns", "/usr/local/lib/podman/aardvark-dns")
PORT = 53
PID_FILE = "aardvark.pid"
_PREDEFINED = ("bridge", "host", "none")


def find() -> str | None:
    """The aardvark-dns program of this host, or None."""
    import shutil

    for path in PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("aardvark-dns")


def dns_names(name: str, container_id: str, hostname: str, aliases) -> list[str]:
    """Docker's EndpointSettings.DNSNames: the name, the aliases, the short ID, the hostname."""
    return list(dict.fromkeys(n for n in (name, *(aliases or ()), container_id[:12], hostname) if n))


class Resolver:
    """The installation's aardvark-dns (`engine.networks.resolver`)."""

    def __init__(self, engine):
        self.engine = engine
        self.directory = engine.runroot / "network" / "dns"

    def sync(self) -> None:
        """Make the resolver's files say who is on which user network now; start,
        reload or stop it to match. Best effort: a host without aardvark-dns, or
        one that fails, leaves names to /etc/hosts (a warning in berth's log)."""
        with self.engine.lock("dns"):
            networks = self._networks()
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for entry in os.listdir(self.directory):
                if entry != PID_FILE and entry not in networks:
                    os.unlink(self.directory / entry)
            for network_id, text in networks.items():
                _write(self.directory / network_id, text)
            pid = self._pid()
            if pid:  # aardvark-dns 1.4 (Debian 12) rebinds its sockets on SIGHUP, racing the
                self._end(pid)  # old ones: queries went unanswered; a fresh process answers at once
            if networks:
                self._start()

    def stop(self) -> None:
        """End the resolver and forget its files (reset, uninstall)."""
        with self.engine.lock("dns"):
            pid = self._pid()
            if pid:
                self._end(pid)
            if self.directory.is_dir():
                for entry in os.listdir(self.directory):
                    os.unlink(self.directory / entry)

    def nameserver(self, network_names: list[str]) -> str | None:
        """The name server of a container on these networks: the gateway of its
        first user-defined one, when there is a resolver; None otherwise."""
        for name in network_names:
            if name in _PREDEFINED or name.startswith("container:"):
                continue
            row = self.engine.store.one("SELECT gateway FROM networks WHERE name = ?", (name,))
            if row is not None and row["gateway"]:
                return row["gateway"] if find() else None
        return None

    # -- inside

    def _networks(self) -> dict[str, str]:
        """network ID -> the aardvark file of every user network with containers on it."""
        rows = self.engine.store.all(
            "SELECT a.network_id, a.address, n.name AS network, n.gateway, c.id, c.name, c.config, c.network AS "
            "settings FROM ip_allocations a JOIN networks n ON n.id = a.network_id JOIN containers c ON "
            "c.id = a.container_id ORDER BY a.rowid")
        out: dict[str, list[str]] = {}
        for row in rows:
            if row["network"] in _PREDEFINED or not row["gateway"]:
                continue
            endpoint = ((loads(row["settings"]) or {}).get("Networks") or {}).get(row["network"]) or {}
            hostname = (loads(row["config"]) or {}).get("Hostname") or ""
            names = dns_names(row["name"], row["id"], hostname, endpoint.get("Aliases"))
            lines = out.setdefault(row["network_id"], [row["gateway"]])
            lines.append(f"{row['id']} {row['address']}  {','.join(names)}")
        return {network_id: "\n".join(lines) + "\n" for network_id, lines in out.items()}

    def _pid(self) -> int:
        """The running resolver's PID (its PID file, checked against the process), or 0. Without
        the file (a run directory wiped under a running one), the process serving this directory."""
        try:
            pid = int((self.directory / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return next((pid for pid in _processes() if self._ours(pid)), 0)
        return pid if self._ours(pid) else 0

    def _ours(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return b"aardvark-dns" in argv[0] and os.fsencode(self.directory) in argv

    def _start(self) -> None:
        import subprocess

        program = find()
        if program is None:
            _warn("aardvark-dns not found: containers on user-defined networks find each other through "
                  "/etc/hosts only (install the aardvark-dns package)")
            return
        log = self.directory.parent / "aardvark.log"  # its own messages (the server keeps it open)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:  # it forks; its first process returns once the server is ready
            done = subprocess.run([program, "--config", str(self.directory), "-p", str(PORT), "run"],
                                  stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _warn(f"aardvark-dns did not start: {exc}")
            return
        finally:
            os.close(fd)
        if done.returncode != 0:
            _warn(f"aardvark-dns did not start (exit {done.returncode}): see {log}")

    def _end(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(pid):  # its port must be free for the next one
            time.sleep(0.005)
        (self.directory / PID_FILE).unlink(missing_ok=True)


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


def _write(path, text: str) -> None:
    from berth.core.plumbing import atomic

    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    atomic.write_text(path, text, 0o600)


def _warn(message: str) -> None:
    from berth.core.plumbing.log import get_logger

    get_logger("berth.dns").warning(message)
