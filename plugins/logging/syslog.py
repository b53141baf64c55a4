"""The syslog log driver: each line becomes one syslog message, as Docker sends it.

Formats (``syslog-format``), each message ending with a newline:

- ``rfc5424`` (berth's default)::

      <30>1 2026-11-29T06:51:07Z myhost 0123456789ab 4242 0123456789ab - hello

  i.e. ``<PRI>1 TIMESTAMP HOSTNAME TAG PID TAG - MSG``: Docker puts the tag
  in both APP-NAME and MSGID; the time is the line's, in UTC.
- ``rfc5424micro``: the same with microseconds in the time.
- ``rfc3164``: ``<PRI>Nov 29 06:51:07 myhost TAG[PID]: MSG`` (local time).

PRI is facility*8 + severity: info (6) for stdout, err (3) for stderr.
``tag`` understands Docker's ``{{.ID}}`` (12 characters) and ``{{.FullID}}``;
other template fields are sent literally. Transports: /dev/log (default),
``unix://``, ``unixgram://``, ``udp://``, ``tcp://`` (default port 514).
"""

from __future__ import annotations

import errno
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from berth.core.drivers import LogDriver, LogEntry
from berth.core.errors import InvalidArgument

DEFAULT_ADDRESS = "unixgram:///dev/log"

_TLS_OPTIONS = {"syslog-tls-ca-cert", "syslog-tls-cert", "syslog-tls-key", "syslog-tls-skip-verify"}
_KNOWN_OPTIONS = {"syslog-address", "syslog-facility", "syslog-format", "tag",
                  "labels", "labels-regex", "env", "env-regex"} | _TLS_OPTIONS
_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}
_FORMATS = ("rfc5424", "rfc5424micro", "rfc3164")
SEVERITY = {"stdout": 6, "stderr": 3}  # LOG_INFO, LOG_ERR as Docker


def parse_address(address: str) -> tuple[str, object]:
    """("unix"|"unixgram", path) or ("udp"|"tcp", (host, port)), Docker's checks."""
    address = address or DEFAULT_ADDRESS
    url = urlsplit(address)
    if url.scheme in ("unix", "unixgram"):
        if not os.path.exists(url.path) and address != DEFAULT_ADDRESS:
            raise InvalidArgument(f"stat {url.path}: no such file or directory")
        return url.scheme, url.path
    if url.scheme == "tcp+tls":
        raise InvalidArgument("syslog-address tcp+tls:// is not supported by berth")
    if url.scheme not in ("udp", "tcp"):
        raise InvalidArgument(f"unsupported scheme: '{url.scheme}'")
    try:
        port = url.port or 514
    except ValueError:
        raise InvalidArgument(f"invalid syslog-address '{address}': bad port") from None
    if not url.hostname:
        raise InvalidArgument(f"invalid syslog-address '{address}': no host")
    return url.scheme, (url.hostname, port)


def parse_facility(text: str) -> int:
    """The facility number of a name or a number 0-23 (default daemon)."""
    if not text:
        return _FACILITIES["daemon"]
    if text in _FACILITIES:
        return _FACILITIES[text]
    if text.isdigit() and 0 <= int(text) <= 23:
        return int(text)
    raise InvalidArgument("invalid syslog facility")


def parse_format(text: str) -> str:
    if not text:
        return "rfc5424"
    if text not in _FORMATS:
        raise InvalidArgument("Invalid syslog format")
    return text


def format_message(fmt: str, priority: int, when: datetime, hostname: str, tag: str, pid: int,
                   line: bytes) -> bytes:
    """One syslog message for `line` (its trailing newline replaced by ours)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    content = line[:-1] if line.endswith(b"\n") else line
    if fmt == "rfc3164":
        local = when.astimezone()
        stamp = local.strftime("%b ") + f"{local.day:2d}" + local.strftime(" %H:%M:%S")
        head = f"<{priority}>{stamp} {hostname} {tag}[{pid}]: "
    else:
        utc = when.astimezone(timezone.utc)
        stamp = utc.strftime("%Y-%m-%dT%H:%M:%S")
        if fmt == "rfc5424micro":
            stamp += f".{utc.microsecond:06d}"
        head = f"<{priority}>1 {stamp}Z {hostname} {tag} {pid} {tag} - "
    return head.encode() + content + b"\n"


class SyslogLogDriver(LogDriver):
    """Sends each line to a syslog server; cannot read back."""

    name = "syslog"
    readable = False

    def __init__(self, container_id: str, log_dir: Path, options: Mapping[str, str] | None = None):
        super().__init__(container_id, log_dir, options)
        self.validate_options(self.options)
        self.transport, self.target = parse_address(self.options.get("syslog-address", ""))
        self.facility = parse_facility(self.options.get("syslog-facility", ""))
        self.format = parse_format(self.options.get("syslog-format", ""))
        tag = self.options.get("tag") or "{{.ID}}"
        self.tag = tag.replace("{{.ID}}", container_id[:12]).replace("{{.FullID}}", container_id)
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None

    @classmethod
    def validate_options(cls, options: Mapping[str, str]) -> None:
        for key in options:
            if key not in _KNOWN_OPTIONS:
                raise InvalidArgument(f"unknown log opt '{key}' for syslog log driver")
            if key in _TLS_OPTIONS:
                raise InvalidArgument(f"log opt '{key}' needs syslog over TLS, which berth does not support")
        parse_address(options.get("syslog-address", ""))
        parse_facility(options.get("syslog-facility", ""))
        parse_format(options.get("syslog-format", ""))

    def _connect(self) -> socket.socket:
        if self.transport in ("udp", "tcp"):
            host, port = self.target
            kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
            family, _, _, _, addr = socket.getaddrinfo(host, port, type=kind)[0]
            sock = socket.socket(family, kind)
        else:
            # unixgram is a datagram socket; unix:// is a stream one, or a datagram one
            # when that is what listens there (as rsyslog's /dev/log)
            kinds = [socket.SOCK_DGRAM] if self.transport == "unixgram" else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
            for kind in kinds:
                sock = socket.socket(socket.AF_UNIX, kind)
                try:
                    sock.connect(self.target)
                    return sock
                except OSError as exc:
                    sock.close()
                    if exc.errno != errno.EPROTOTYPE or kind == kinds[-1]:
                        raise
        try:
            sock.connect(addr)
        except BaseException:
            sock.close()
            raise
        return sock

    def write(self, entry: LogEntry) -> None:
        priority = self.facility * 8 + SEVERITY.get(entry.stream, 6)
        message = format_message(self.format, priority, entry.time, self.hostname, self.tag, os.getpid(),
                                 entry.line)
        for attempt in (1, 2):  # the server may have restarted: reconnect once
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(message)
                return
            except ConnectionRefusedError:
                if self.transport == "udp":
                    return  # nobody listens (an ICMP answer to an earlier datagram): syslog over UDP is lossy
                self.close()
                if attempt == 2:
                    raise
            except OSError:
                self.close()
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()
