"""The ``docker`` registry driver: a client of the OCI distribution HTTP API.

Speaks to docker.io and any v2 registry (distribution, Harbor, zot, quay,
GHCR ...): manifests and blobs by digest or tag, uploads (cross-repository
mount, monolithic or chunked), tag and catalog listing, search, login.

Transport: the standard library's http.client, one pool of keep-alive
connections per registry shared by all threads (a connection is used by
one request at a time). A registry may stall: every socket operation has
an idle timeout (option ``timeout``, config ``registries.idle_timeout``)
and every request, its body included, a deadline (option ``deadline``,
config ``registries.request_timeout``), enforced by a timer that shuts the
socket down, so a byte every few seconds cannot hold a pull forever. Redirects are
followed by hand, and the Authorization header is only ever sent to the
registry's own origin (scheme, host, port): blob downloads redirected to a
storage host never receive credentials. An idempotent request (GET, HEAD)
that meets a 429, 500, 502, 503 or 504 or a connection reset before the
answer is retried (RETRIES times, urllib3's Retry: exponential back-off with
jitter, the registry's Retry-After honoured up to RETRY_AFTER_MAX seconds);
a timeout is not retried (the deadlines above stay the bound).

Host policy (`registry_url`, `is_insecure`): HTTPS, except for locations
in the insecure list (config ``registries.insecure``, default
``["127.0.0.0/8"]``; entries are CIDRs, host names or ``host:port``) and
``localhost``, which are spoken to over plain HTTP. Docker Hub
(``docker.io``) is served by ``registry-1.docker.io``; its search by
``index.docker.io``.

Nothing a registry sends is trusted: see berth.core.drivers.Registry.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import re
import select
import socket
import ssl
import threading
from typing import BinaryIO, Mapping
from urllib.parse import urlencode, urljoin, urlsplit

from berth.core.drivers import Registry
from berth.core.errors import Corrupt, InvalidArgument, NotFound, RegistryError, Unauthorized
from berth.core.oci.content import check_digest, sha256_bytes
from berth.core.plumbing.log import get_logger
from berth.plugins.registry import auth

log = get_logger("berth.registry")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_INDEX = "https://index.docker.io"
DEFAULT_INSECURE = ("127.0.0.0/8",)

CHUNK_SIZE = 32 << 20  # blobs above this are uploaded in PATCH chunks of this size
READ_CHUNK = 1 << 20
TIMEOUT = 30.0  # seconds a registry may stay silent (registries.idle_timeout)
DEADLINE = 600.0  # seconds one request may take, its body included (registries.request_timeout)
MAX_REDIRECTS = 5
# Retries of idempotent requests (GET, HEAD) on a 429, a 5xx gateway or overload status
# or a connection reset before the answer: urllib3's Retry policy (exponential back-off
# with jitter, Retry-After honoured up to RETRY_AFTER_MAX seconds).
RETRIES = 3
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD"})
BACKOFF_FACTOR = 0.5
BACKOFF_JITTER = 0.25
RETRY_AFTER_MAX = 60.0
MAX_PAGES = 10000
ERROR_BODY_MAX = 64 << 10
TOKEN_BODY_MAX = 1 << 20
LIST_BODY_MAX = 16 << 20

_GENERIC_TYPES = {"", "application/json", "application/octet-stream", "text/plain"}
_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


# --------------------------------------------------------------------------
# host policy
# --------------------------------------------------------------------------


def api_host(location: str) -> str:
    """Where a registry's API lives: docker.io -> registry-1.docker.io."""
    return DOCKER_HUB_API if location in (DOCKER_HUB, "index.docker.io") else location


def _split_port(host: str) -> tuple[str, str | None]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, None


def is_insecure(host: str, insecure: list[str] | tuple[str, ...] | None) -> bool:
    """Whether `host` (``name[:port]``) is spoken to over plain HTTP.

    True for ``localhost`` and for a host matching an entry of `insecure`:
    a CIDR containing its IP address, or the same ``name`` / ``name:port``.
    Names are not resolved (a name matches only a name entry).
    """
    name, _ = _split_port(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for entry in insecure if insecure is not None else DEFAULT_INSECURE:
        entry = str(entry).strip()
        if entry in (host, name):
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def registry_url(location: str, insecure: list[str] | tuple[str, ...] | None = None) -> str:
    """The base URL (``scheme://host[:port]``) of the registry at `location`.

    An explicit ``http://`` or ``https://`` prefix wins; otherwise HTTPS
    unless `is_insecure`. Docker Hub maps to registry-1.docker.io.
    """
    for scheme in ("http", "https"):
        if location.startswith(scheme + "://"):
            host = location[len(scheme) + 3:].split("/", 1)[0]
            return f"{scheme}://{api_host(host)}"
    host = api_host(location.split("/", 1)[0])
    return f"{'http' if is_insecure(host, insecure) else 'https'}://{host}"


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------


def _check_repository(repository: str) -> str:
    if not isinstance(repository, str) or len(repository) > 255 or not _REPOSITORY_RE.match(repository):
        raise InvalidArgument(f"invalid repository name {repository!r}")
    return repository


def _check_reference(reference: str) -> str:
    """A tag, or a digest (checked strictly: no ``sha256:../x``)."""
    if isinstance(reference, str) and ":" in reference:
        return check_digest(reference)
    if not isinstance(reference, str) or not _TAG_RE.match(reference):
        raise InvalidArgument(f"invalid tag {reference!r}")
    return reference


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class VerifyingReader:
    """A blob stream that raises Corrupt at its end unless the bytes match.

    Checks the digest, and the size when known; a body longer than the size
    is refused as soon as it overflows. `copy_verified` drains one into a file.
    """

    def __init__(self, stream, digest: str, size: int | None = None):
        self.stream = stream
        self.digest = check_digest(digest)
        self.size = size
        self.read_bytes = 0
        self._hash = hashlib.sha256()
        self._done = False

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        try:
            data = self.stream.read(READ_CHUNK if n is None or n < 0 else n)
        except http.client.IncompleteRead:
            raise Corrupt(f"blob {self.digest}: truncated after {self.read_bytes} bytes") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"blob {self.digest}: download failed: {_reason(exc)}") from None
        if data:
            self.read_bytes += len(data)
            if self.size is not None and self.read_bytes > self.size:
                raise Corrupt(f"blob {self.digest}: more than the expected {self.size} bytes")
            self._hash.update(data)
            return data
        self._done = True
        if self.size is not None and self.read_bytes != self.size:
            raise Corrupt(f"blob {self.digest}: truncated: {self.read_bytes} of {self.size} bytes")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise Corrupt(f"blob {self.digest}: digest mismatch, the content is {actual}")
        return b""

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def copy_verified(src: BinaryIO, dst: BinaryIO, digest: str, size: int | None = None) -> int:
    """Copy `src` to `dst`; raise Corrupt unless the bytes hash to `digest` (and have `size`)."""
    reader = src if isinstance(src, VerifyingReader) else VerifyingReader(src, digest, size)
    total = 0
    while True:
        data = reader.read(READ_CHUNK)
        if not data:
            return total
        dst.write(data)
        total += len(data)


class _Limited:
    """At most `size` bytes of a stream, for an upload body of known length."""

    def __init__(self, stream, size: int):
        self.stream = stream
        self.left = size

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.stream.read(n)
        if not data:
            raise Corrupt(f"upload source ended {self.left} bytes early")
        self.left -= len(data)
        return data


class _Transient(RegistryError):
    """The connection broke before an answer came (reset, closed): worth another try."""


class _Answer:
    """What urllib3's Retry reads of a response."""

    def __init__(self, resp):
        self.status = resp.status
        after = resp.header("Retry-After")
        self.headers = {"Retry-After": after} if after else {}

    def get_redirect_location(self):
        return False


def _retry_policy():
    from urllib3.util.retry import Retry  # off the `run` path: only once a request failed

    return Retry(total=RETRIES, backoff_factor=BACKOFF_FACTOR, backoff_jitter=BACKOFF_JITTER,
                 status_forcelist=RETRY_STATUSES, allowed_methods=IDEMPOTENT, respect_retry_after_header=True,
                 raise_on_status=False, raise_on_redirect=False)


def _reason(exc: BaseException) -> str:
    """One line for a network failure, in Docker's words where it has some."""
    if isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc).upper().replace(" ", "_"):
        return "http: server gave HTTP response to HTTPS client"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message}"
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "i/o timeout"
    if isinstance(exc, socket.gaierror):
        return "no such host"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text


# --------------------------------------------------------------------------
# HTTP: a small thread-safe keep-alive pool over http.client
# --------------------------------------------------------------------------


class _Pool:
    """Idle keep-alive connections per origin, shared by threads."""

    def __init__(self, timeout: float, context: ssl.SSLContext | None = None):
        self.timeout = timeout
        self.context = context
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        """(connection, reused)."""
        while True:
            with self._lock:
                idle = self._idle.get((scheme, netloc))
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if _alive(conn):
                return conn, True
            conn.close()
        if scheme == "https":
            context = self.context or ssl.create_default_context()
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=context,
                                               blocksize=READ_CHUNK), False
        return http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=READ_CHUNK), False

    def give_back(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault((scheme, netloc), []).append(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _alive(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection is usable unless the server closed it
    (its socket is then readable: EOF), which a streamed body could not survive."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class _Watchdog:
    """The deadline of one request: past it, the connection's socket is shut
    down, which wakes a read blocked in it; the request then fails naming
    the registry. `translate` turns a transport failure into that message."""

    def __init__(self, registry: str, conn: http.client.HTTPConnection, deadline: float, idle: float):
        self.registry = registry
        self.conn = conn
        self.deadline = deadline
        self.idle = idle
        self.expired = False
        self._timer = threading.Timer(deadline, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self._timer.cancel()

    def translate(self, exc: BaseException, method: str, url: str) -> BaseException:
        """The berth error for `exc` raised while talking to the registry (or `exc` itself)."""
        if self.expired:
            return RegistryError(f'registry {self.registry} did not complete {method} "{_safe_url(url)}" within '
                                 f"{self.deadline:g} seconds (registries.request_timeout)")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return RegistryError(f'registry {self.registry} sent nothing for {self.idle:g} seconds: {method} '
                                 f'"{_safe_url(url)}" timed out (registries.idle_timeout)')
        return exc


class _Response:
    """A response whose connection returns to the pool once the body is read."""

    def __init__(self, pool: _Pool, origin: tuple[str, str], conn, resp: http.client.HTTPResponse, url: str,
                 watchdog: "_Watchdog"):
        self.pool = pool
        self.watchdog = watchdog
        self.origin = origin
        self.conn = conn
        self.resp = resp
        self.url = url
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self._released = False

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    @property
    def length(self) -> int | None:
        value = self.header("Content-Length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.resp.read() if n is None or n < 0 else self.resp.read(n)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self.watchdog.translate(exc, "GET", self.url) from None
        if self.watchdog.expired:  # the timer shut the socket: what came is cut short
            self.close()
            raise self.watchdog.translate(TimeoutError(), "GET", self.url)
        if (not data and n != 0) or self.resp.isclosed():
            self._release()
        return data

    def read_limited(self, limit: int, what: str) -> bytes:
        """The whole body, refusing one over `limit` bytes."""
        length = self.length
        if length is not None and length > limit:
            self.close()
            raise Corrupt(f"{what} is {length} bytes, over the {limit} byte limit")
        data = self.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise Corrupt(f"{what} is over the {limit} byte limit")
        self._release()
        return data

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        self.watchdog.cancel()
        if self.resp.isclosed() and not self.resp.will_close:
            self.pool.give_back(*self.origin, self.conn)
        else:
            self.conn.close()

    def close(self) -> None:
        if not self._released:
            self._released = True
            self.watchdog.cancel()
            self.resp.close()
            self.conn.close()


# --------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------


class DistributionRegistry(Registry):
    """The OCI distribution API client (see the module doc and berth.core.drivers.Registry).

    Extra options: ``insecure_list`` (used only when ``insecure`` is not
    given), ``page_size`` (``n`` for tag and catalog listing), ``tls_verify``
    (default True), ``search_url`` (Docker Hub's search service).
    """

    name = "docker"

    def __init__(self, location: str, options: Mapping | None = None):
        super().__init__(location, options)
        opts = self.options
        if opts.get("insecure") is None:
            self.base = registry_url(location, opts.get("insecure_list"))
        else:
            host = location.split("://", 1)[-1].split("/", 1)[0]
            scheme = "http" if opts.get("insecure") else "https"
            if "://" in location:
                scheme = location.split("://", 1)[0]
            self.base = f"{scheme}://{api_host(host)}"
        split = urlsplit(self.base)
        try:
            split.port  # noqa: B018 - raises for a port out of 0-65535
        except ValueError:
            port = split.netloc.rsplit(":", 1)[-1]
            raise RegistryError(f'Get "{self.base}/v2/": dial tcp: address {port}: invalid port') from None
        self._origin = (split.scheme, split.netloc)
        self.host = location.split("://", 1)[-1].split("/", 1)[0]
        creds = opts.get("credentials")
        self._credentials: tuple[str, str] | None = (str(creds[0]), str(creds[1])) if creds else None
        self.user_agent = str(opts.get("user_agent") or "berth")
        self.timeout = float(opts.get("timeout") or TIMEOUT)
        self.deadline = float(opts.get("deadline") or DEADLINE)
        self.chunk_size = int(opts.get("chunk_size") or CHUNK_SIZE)
        self.page_size = int(opts["page_size"]) if opts.get("page_size") else None
        context = None
        if opts.get("tls_verify") is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._pool = _Pool(self.timeout, context)
        self._tokens = auth.TokenCache()
        self._auth_lock = threading.Lock()
        self._basic = False  # the registry asked for basic auth
        self._bearer: auth.Challenge | None = None  # the registry's bearer challenge

    @classmethod
    def for_host(cls, config, host: str, credentials: tuple[str, str] | None = None,
                 auth_file=None) -> "DistributionRegistry":
        """The client for `host` configured from berth's config (insecure list)
        and the stored credentials (berth.core.oci.credentials), unless given."""
        from berth.core.oci import credentials as stored

        insecure = None
        timeouts = {}
        if config is not None:
            try:
                insecure = config.get("registries.insecure")
            except (KeyError, TypeError, AttributeError):
                insecure = None
            for option, key in (("timeout", "idle_timeout"), ("deadline", "request_timeout")):
                try:
                    timeouts[option] = _seconds(config.get(f"registries.{key}"), key)
                except (KeyError, TypeError, AttributeError):
                    pass
        if credentials is None:
            credentials = stored.load(host, auth_file)
        from berth.core import __version__

        agent = f"berth/{__version__}"
        return cls(host, {"insecure_list": list(insecure) if insecure is not None else None,
                          "credentials": credentials, "user_agent": agent, **timeouts})

    def close(self) -> None:
        """Close idle connections."""
        self._pool.close()

    # -- HTTP with authentication and redirects ----------------------------

    def _url(self, path: str) -> str:
        return self.base + path

    def _same_origin(self, url: str) -> bool:
        split = urlsplit(url)
        return (split.scheme, split.netloc) == self._origin

    def _send(self, method: str, url: str, headers: dict, body=None) -> _Response:
        """One request on a pooled connection; a stale keep-alive one is retried once."""
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise RegistryError(f"invalid URL {url!r} from the registry")
        target = split.path or "/"
        if split.query:
            target += "?" + split.query
        headers = {"User-Agent": self.user_agent, **headers}
        replayable = body is None or isinstance(body, (bytes, bytearray))
        for attempt in (1, 2):
            conn, reused = self._pool.take(split.scheme, split.netloc)
            watchdog = _Watchdog(split.netloc, conn, self.deadline, self.timeout)
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                watchdog.cancel()
                conn.close()
                if reused and replayable and attempt == 1 and not watchdog.expired:
                    continue
                failure = self._failure(watchdog, exc, method, url)
                if not watchdog.expired and replayable:
                    raise _Transient(failure.message) from None
                raise failure from None
            except (OSError, http.client.HTTPException) as exc:
                watchdog.cancel()
                conn.close()
                raise self._failure(watchdog, exc, method, url) from None
            except BaseException:
                watchdog.cancel()
                conn.close()
                raise
            response = _Response(self._pool, (split.scheme, split.netloc), conn, resp, url, watchdog)
            if method == "HEAD":
                response.read()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _failure(watchdog: _Watchdog, exc: BaseException, method: str, url: str) -> RegistryError:
        translated = watchdog.translate(exc, method, url)
        if isinstance(translated, RegistryError):
            return translated
        return RegistryError(f'{method} "{_safe_url(url)}": {_reason(exc)}')

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        if self._basic and self._credentials:
            return _basic_header(self._credentials)
        if self._bearer is not None:
            token = self._tokens.get(self._token_key(self._bearer, scopes))
            if token is None:
                token = self._fetch_token(self._bearer, scopes)
            return f"Bearer {token}"
        return None

    def _token_key(self, challenge: auth.Challenge, scopes: tuple[str, ...]) -> tuple:
        return (challenge.realm, challenge.params.get("service"), tuple(sorted(set(scopes))))

    def _fetch_token(self, challenge: auth.Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.realm
        if not realm:
            raise RegistryError("the registry asked for a bearer token without saying where to get it")
        wanted = sorted(set(scopes))
        url = auth.token_url(realm, challenge.params.get("service"), wanted)
        headers = {"Accept": "application/json"}
        if self._credentials:
            headers["Authorization"] = _basic_header(self._credentials)
        resp = self._send("GET", url, headers)
        if resp.status in (401, 403):
            resp.close()
            if self._credentials:
                raise Unauthorized("unauthorized: incorrect username or password")
            raise Unauthorized("unauthorized: authentication required")
        if resp.status != 200:
            resp.close()
            raise RegistryError(f"token request to {_safe_url(realm)} failed: {resp.status} {resp.reason}")
        token, lifetime = auth.parse_token_response(resp.read_limited(TOKEN_BODY_MAX, "token response"))
        self._tokens.put(self._token_key(challenge, tuple(wanted)), token, lifetime)
        return token

    def _handle_challenge(self, resp: _Response, scopes: tuple[str, ...]) -> tuple[str, ...] | None:
        """After a 401: learn the challenge; the scopes to retry with, or None if retrying is pointless."""
        challenges = auth.parse_challenges(resp.header("WWW-Authenticate") or "")
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        with self._auth_lock:
            if bearer is not None:
                asked = bearer.params.get("scope")
                scopes = tuple(sorted(set(scopes) | ({asked} if asked else set())))
                stale = self._bearer is not None and self._tokens.get(self._token_key(bearer, scopes)) is not None
                if stale and bearer.params.get("error") != "invalid_token":
                    return None  # a fresh token was refused: the scope is not granted
                if stale:
                    self._tokens.clear()
                self._bearer = auth.Challenge("bearer", {k: v for k, v in bearer.params.items()
                                                         if k in ("realm", "service")})
                return scopes
            if basic is not None and self._credentials and not self._basic:
                self._basic = True
                return scopes
        return None

    def _request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...] = (), headers=None,
                 body=None, ok=(200,), what: str = "") -> _Response:
        """Send with authentication (one retry after a challenge) and redirects.

        A status in `ok` returns the response; anything else is translated
        into a berth error by `_raise_for`.
        """
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        headers = dict(headers or {})
        retried = False
        redirects = 0
        retry = None  # urllib3's Retry, from the first transient failure on
        while True:
            send_headers = dict(headers)
            if self._same_origin(url):
                authorization = self._auth_header(scopes)
                if authorization:
                    send_headers["Authorization"] = authorization
            try:
                resp = self._send(method, url, send_headers, body)
            except _Transient as exc:
                if method not in IDEMPOTENT:
                    raise RegistryError(exc.message) from None
                retry = self._again(retry, method, url, error=exc)
                continue
            if resp.status in RETRY_STATUSES and resp.status not in ok and method in IDEMPOTENT:
                retry = self._again(retry, method, url, resp=resp)
                if retry is not None:
                    continue
            if resp.status == 401 and not retried and self._same_origin(url):
                new_scopes = self._handle_challenge(resp, scopes)
                if new_scopes is not None:
                    resp.close()
                    retried = True
                    scopes = new_scopes
                    if body is not None and not isinstance(body, (bytes, bytearray)):
                        raise Unauthorized("unauthorized: authentication required")
                    continue
            if resp.status in (301, 302, 303, 307, 308) and resp.header("Location"):
                redirects += 1
                resp.close()
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f'{method} "{_safe_url(url)}": stopped after {MAX_REDIRECTS} redirects')
                url = urljoin(url, resp.header("Location"))
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if resp.status in ok:
                return resp
            self._raise_for(resp, what)

    def _again(self, retry, method: str, url: str, *, resp: _Response | None = None, error: RegistryError | None = None):
        """Wait before trying `method url` again and return the Retry state, or, with a response,
        None when no try is left (the caller reports the response); an error is raised then."""
        from urllib3.exceptions import MaxRetryError

        retry = retry or _retry_policy()
        answer = _Answer(resp) if resp is not None else None
        try:
            retry = retry.increment(method, url, response=answer, error=error)
        except MaxRetryError:
            if error is not None:
                raise RegistryError(error.message) from None
            return None
        if answer is not None:
            wait = retry.get_retry_after(answer)
            if wait is not None and wait > RETRY_AFTER_MAX:
                return None  # not worth waiting for: the registry's answer is the error
            resp.close()
        log.debug("registry request retried", method=method, url=_safe_url(url),
                  status=resp.status if resp is not None else None, error=error.message if error else None)
        retry.sleep(answer)
        return retry

    def _raise_for(self, resp: _Response, what: str):
        """Translate an error response into one berth error (the one place that does)."""
        try:
            body = resp.read_limited(ERROR_BODY_MAX, "error response")
        except (Corrupt, RegistryError, OSError, http.client.HTTPException):
            body = b""
        code, message = "", ""
        try:
            errors = json.loads(body).get("errors") if body else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code") or "").upper()
                message = str(errors[0].get("message") or "").splitlines()[0] if errors[0].get("message") else ""
        except (ValueError, AttributeError, UnicodeDecodeError):
            pass
        status = resp.status
        words = code.lower().replace("_", " ") if code else ""
        detail = f"{words}: {message}" if message else words
        prefix = f"{what}: " if what else ""  # names the object; used for "not found" only
        if code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN", "MANIFEST_BLOB_UNKNOWN") or \
                (status == 404 and not code):
            raise NotFound(f"{prefix}{detail or 'not found'}")
        if code in ("UNAUTHORIZED", "DENIED") or status in (401, 403):
            if status == 401 and self._credentials and code in ("", "UNAUTHORIZED"):
                raise Unauthorized("unauthorized: incorrect username or password")
            if not detail:
                detail = "unauthorized: authentication required" if status == 401 else \
                    "denied: requested access to the resource is denied"
            raise Unauthorized(detail)
        if code:
            raise RegistryError(detail)
        raise RegistryError(f"received unexpected HTTP status: {status} {resp.reason}".strip())

    def _repo_scopes(self, repository: str, push: bool = False, mount_from: str | None = None) -> tuple[str, ...]:
        scopes = [f"repository:{repository}:pull,push" if push else f"repository:{repository}:pull"]
        if mount_from:
            scopes.append(f"repository:{mount_from}:pull")
        return tuple(scopes)

    def _name(self, repository: str) -> str:
        return f"{self.host}/{repository}"

    # -- reading ------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str, accept: list[str]) -> tuple[bytes, str, str]:
        _check_repository(repository)
        _check_reference(reference)
        by_digest = reference.startswith("sha256:")
        shown = f"{self._name(repository)}{'@' if by_digest else ':'}{reference}"
        resp = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                             scopes=self._repo_scopes(repository),
                             headers={"Accept": ", ".join(accept) if accept else "*/*"},
                             what=f"manifest for {shown} not found")
        data = resp.read_limited(self.MANIFEST_MAX, f"manifest {shown}")
        digest = sha256_bytes(data)
        if by_digest and digest != reference:
            raise Corrupt(f"manifest digest mismatch: asked for {reference}, the content is {digest}")
        claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise Corrupt(f"manifest digest mismatch: the registry says {claimed}, the content is {digest}")
        content_type = _media_type(resp.header("Content-Type"))
        inner = ""
        try:
            doc = json.loads(data)
            if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
                inner = doc["mediaType"]
        except (ValueError, UnicodeDecodeError):
            pass
        if inner and content_type not in _GENERIC_TYPES and inner != content_type:
            raise Corrupt(f"manifest {shown}: its mediaType {inner} disagrees with the registry's "
                          f"Content-Type {content_type}")
        media_type = content_type if content_type not in _GENERIC_TYPES else (inner or content_type)
        return data, media_type, digest

    def get_blob(self, repository: str, digest: str) -> VerifyingReader:
        _check_repository(repository)
        check_digest(digest)
        resp = self._request("GET", f"/v2/{repository}/blobs/{digest}", scopes=self._repo_scopes(repository),
                             what=f"blob {digest} of {self._name(repository)}")
        return VerifyingReader(resp, digest, resp.length)

    def has_blob(self, repository: str, digest: str) -> bool:
        _check_repository(repository)
        check_digest(digest)
        resp = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", scopes=self._repo_scopes(repository),
                             ok=(200, 404), what=f"blob {digest} of {self._name(repository)}")
        return resp.status == 200

    # -- writing ------------------------------------------------------------

    def put_blob(self, repository: str, digest: str, size: int, stream: BinaryIO,
                 mount_from: str | None = None) -> bool:
        _check_repository(repository)
        check_digest(digest)
        if mount_from:
            _check_repository(mount_from)
        scopes = self._repo_scopes(repository, push=True, mount_from=mount_from)
        what = f"upload of {digest} to {self._name(repository)}"
        query = "?" + urlencode({"mount": digest, "from": mount_from}) if mount_from else ""
        resp = self._request("POST", f"/v2/{repository}/blobs/uploads/{query}", scopes=scopes,
                             headers={"Content-Length": "0"}, body=b"", ok=(201, 202), what=what)
        resp.read()
        if resp.status == 201:
            if mount_from:
                return True
            raise RegistryError(f"{what}: the registry created the blob before receiving it")
        location = self._location(resp, what)
        if size <= self.chunk_size:
            resp = self._request("PUT", _with_query(location, digest=digest), scopes=scopes,
                                 headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                                 body=_Limited(stream, size), ok=(201,), what=what)
            resp.read()
            return False
        offset = 0
        while offset < size:
            n = min(self.chunk_size, size - offset)
            resp = self._request("PATCH", location, scopes=scopes,
                                 headers={"Content-Type": "application/octet-stream", "Content-Length": str(n),
                                          "Content-Range": f"{offset}-{offset + n - 1}"},
                                 body=_Limited(stream, n), ok=(202,), what=what)
            resp.read()
            location = self._location(resp, what)
            offset += n
        resp = self._request("PUT", _with_query(location, digest=digest), scopes=scopes,
                             headers={"Content-Length": "0"}, body=b"", ok=(201,), what=what)
        resp.read()
        return False

    def _location(self, resp: _Response, what: str) -> str:
        location = resp.header("Location")
        if not location:
            raise RegistryError(f"{what}: the registry gave no upload location")
        url = urljoin(resp.url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"{what}: invalid upload location")
        return url

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        _check_repository(repository)
        _check_reference(reference)
        if len(data) > self.MANIFEST_MAX:
            raise InvalidArgument(f"manifest is {len(data)} bytes, over the {self.MANIFEST_MAX} byte limit")
        digest = sha256_bytes(data)
        if reference.startswith("sha256:") and reference != digest:
            raise InvalidArgument(f"manifest digest mismatch: pushing {digest} as {reference}")
        resp = self._request("PUT", f"/v2/{repository}/manifests/{reference}",
                             scopes=self._repo_scopes(repository, push=True),
                             headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                             body=bytes(data), ok=(200, 201), what=f"manifest {self._name(repository)}:{reference}")
        resp.read()
        claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(f"the registry stored manifest {claimed}, berth sent {digest}")
        return digest

    # -- listing ------------------------------------------------------------

    def _pages(self, path: str, key: str, scopes: tuple[str, ...], what: str) -> list[str]:
        url = self._url(path + (f"?n={self.page_size}" if self.page_size else ""))
        out: list[str] = []
        seen = set()
        for _ in range(MAX_PAGES):
            seen.add(url)
            resp = self._request("GET", url, scopes=scopes, headers={"Accept": "application/json"}, what=what)
            link = resp.header("Link")
            body = resp.read_limited(LIST_BODY_MAX, what)
            try:
                items = json.loads(body).get(key) or []
            except (ValueError, AttributeError, UnicodeDecodeError):
                raise RegistryError(f"{what}: the registry answered with invalid JSON") from None
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise RegistryError(f"{what}: the registry answered with an invalid list")
            out.extend(items)
            match = _LINK_NEXT_RE.search(link or "")
            if not match:
                return out
            url = urljoin(url, match.group(1))
            if not self._same_origin(url) or url in seen:
                raise RegistryError(f"{what}: the registry's next page link is invalid")
        raise RegistryError(f"{what}: more than {MAX_PAGES} pages")

    def list_tags(self, repository: str) -> list[str]:
        _check_repository(repository)
        return self._pages(f"/v2/{repository}/tags/list", "tags", self._repo_scopes(repository),
                           f"repository {self._name(repository)} not found")

    def catalog(self) -> list[str]:
        return self._pages("/v2/_catalog", "repositories", ("registry:catalog:*",), f"catalog of {self.host}")

    def search(self, term: str, limit: int = 25) -> list[dict]:
        if self.host in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API) and not self.options.get("search_url"):
            return self._hub_search(term, limit)
        if self.options.get("search_url"):
            return self._hub_search(term, limit)
        needle = term.lower()
        return [{"name": f"{self.host}/{name}", "description": "", "star_count": 0,
                 "is_official": False, "is_automated": False}
                for name in self.catalog() if needle in name.lower()][:limit]

    def _hub_search(self, term: str, limit: int) -> list[dict]:
        """Docker Hub's search API (index.docker.io/v1/search): no credentials are sent."""
        base = self.options.get("search_url") or f"{DOCKER_HUB_INDEX}/v1/search"
        url = base + "?" + urlencode({"q": term, "n": limit})
        resp = self._send("GET", url, {"Accept": "application/json"})
        if resp.status != 200:
            self._raise_for(resp, f"search {term}")
        try:
            results = json.loads(resp.read_limited(LIST_BODY_MAX, "search results")).get("results") or []
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise RegistryError("search: the index answered with invalid JSON") from None
        out = []
        for r in results if isinstance(results, list) else []:
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                out.append({"name": r["name"], "description": str(r.get("description") or ""),
                            "star_count": int(r.get("star_count") or 0),
                            "is_official": bool(r.get("is_official")),
                            "is_automated": bool(r.get("is_automated"))})
        return out[:limit]

    def login(self, username: str | None = None, password: str | None = None) -> None:
        if username is not None:
            self._credentials = (username, password or "")
            with self._auth_lock:
                self._tokens.clear()
                self._basic = False
                self._bearer = None
        resp = self._request("GET", "/v2/", headers={"Accept": "application/json"},
                             what=f"login to {self.host}")
        resp.read()
        if self._credentials and not (self._basic or self._bearer):
            log.debug("registry accepted the request without credentials", registry=self.host)


def _seconds(value, key: str) -> float:
    """A timeout from the configuration: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise InvalidArgument(f"configuration: registries.{key} must be a positive number of seconds, "
                              f"not {value!r}")
    return float(value)


def _basic_header(credentials: tuple[str, str]) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def _with_query(url: str, **params) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _safe_url(url: str) -> str:
    """The URL without its query (upload locations carry state tokens) or user info."""
    split = urlsplit(url)
    try:
        port = split.port
    except ValueError:  # out of range: shown as it was given
        port = split.netloc.rsplit(":", 1)[-1]
    return f"{split.scheme}://{split.hostname or ''}{':' + str(port) if port else ''}{split.path}"
