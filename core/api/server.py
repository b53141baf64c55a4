"""The service: where it listens, API versions, Docker's errors, the idle
timeout and a graceful SIGTERM.

`serve(make_engine, uri, idle_timeout)` runs until SIGTERM/SIGINT, or
until no request has been in flight for `idle_timeout` seconds (0: never).
"""

from __future__ import annotations

import asyncio
import functools
import grp
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from berth.core.errors import (
    BerthError,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RegistryError,
    Unauthorized,
)
from berth.core.runtime.errors import StartError

API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
MAX_BODY = 4 * 1024 * 1024  # a JSON body; archives and image tarballs are streamed, not held
SOCKET_GROUP = "berth"
SHUTDOWN_SECONDS = 10  # SIGTERM: how long requests in flight may take to finish
WORKERS = 32

# What the caller should do -> Docker's status code.
STATUS_OF = [(StartError, 400), (NotFound, 404), (Conflict, 409), (FailedPrecondition, 409), (InvalidArgument, 400),
             (Unauthorized, 401), (RegistryError, 500), (BerthError, 500)]


class ApiError(Exception):
    """An answer other than 2xx with Docker's `{"message": ...}` body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def json_response(data, status: int = 200) -> web.Response:
    """JSON as Docker sends it: Content-Type exactly application/json (clients compare it)."""
    body = json.dumps(data).encode() + b"\n"
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


class request_shape:
    """A context for reading a request's JSON: a value of the wrong shape deep inside it
    (a string where an object goes ...) is a 400 naming the mistake, not a 500."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is not None and issubclass(kind, (TypeError, AttributeError, KeyError, ValueError)):
            raise bad_request(f"invalid request body: a value has the wrong type ({type(exc).__name__}: {exc})") \
                from None
        return False


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


def status_of(exc: BerthError) -> int:
    return next(code for cls, code in STATUS_OF if isinstance(exc, cls))


class Service:
    """What every handler shares: engines (one per worker thread), the pool,
    activity (for the idle timeout) and in-process rendezvous (attach/start)."""

    def __init__(self, make_engine, idle_timeout: float = 5):
        self.make_engine = make_engine
        self.idle_timeout = idle_timeout
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="berth-api")
        self.in_flight = 0
        self.last_active = time.monotonic()
        self.attaching: dict[str, int] = {}  # container ID -> attach requests waiting for its start
        self.started: dict[str, asyncio.Event] = {}
        self.exits: dict[str, asyncio.Future] = {}
        self.execs: dict = {}  # exec ID -> berth.core.api.execs.Exec
        self.stopping = asyncio.Event()
        self.starters = None  # berth.core.api.starter.Starters: containers start there, not on a thread

    def engine(self):
        """This thread's Engine (SQLite connections are not shared between threads)."""
        engine = getattr(self.local, "engine", None)
        if engine is None:
            engine = self.local.engine = self.make_engine()
        return engine

    async def call(self, fn, *args, **kwargs):
        """fn(engine, *args, **kwargs) on a pool thread."""
        def job():
            return fn(self.engine(), *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self.pool, job)

    async def blocking(self, fn, *args):
        """fn(*args) on a pool thread (no engine)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    def exit_future(self, container_id: str) -> asyncio.Future:
        """Resolved with the exit code when an attach in this process sees the container exit."""
        future = self.exits.get(container_id)
        if future is None or future.done():
            future = self.exits[container_id] = asyncio.get_running_loop().create_future()
        return future

    def started_event(self, container_id: str) -> asyncio.Event:
        return self.started.setdefault(container_id, asyncio.Event())


# -- requests ------------------------------------------------------------------------------


def service_of(request: web.Request) -> Service:
    return request.app["service"]


def api_version(request: web.Request) -> tuple[int, int]:
    return request.get("api_version", (1, 43))


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f'strconv.Atoi: parsing "{value}": invalid syntax') from None


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """Docker's `filters` query: {"key": ["v"]} or the old {"key": {"v": true}}."""
    text = request.query.get("filters")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise bad_request(f"invalid filter: {text}") from None
    if not isinstance(raw, dict):
        raise bad_request(f"invalid filter: {text}")
    out = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            out[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list) and all(isinstance(v, str) for v in values):
            out[key] = values
        else:
            raise bad_request(f"invalid filter: {text}")
    return out


async def json_body(request: web.Request, default=None, kind=dict):
    """The request's JSON body (Docker's 400s for bad JSON and a wrong top-level type)."""
    raw = await request.read()
    if not raw.strip():
        if default is not None:
            return default
        raise bad_request("request body is empty: a JSON object is expected")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"invalid JSON: {exc}") from None
    if value is None and default is not None:
        return default
    if not isinstance(value, kind):
        raise bad_request(f"json: cannot unmarshal {json_type(value)} into Go value of type "
                          f"{'object' if kind is dict else 'array'}")
    return value


def json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


# -- the application -----------------------------------------------------------------------


@web.middleware
async def _middleware(request: web.Request, handler):
    service = service_of(request)
    service.in_flight += 1
    service.last_active = time.monotonic()
    try:
        version = request.match_info.get("version")
        if version is not None:
            try:
                wanted = _version_tuple(version)
            except ValueError:
                return error_response(400, f"invalid API version: {version}")
            if wanted > _version_tuple(API_VERSION):
                return error_response(400, f"client version {version} is too new. "
                                           f"Maximum supported API version is {API_VERSION}")
            if wanted < _version_tuple(MIN_API_VERSION):
                return error_response(400, f"client version {version} is too old. Minimum supported API "
                                           f"version is {MIN_API_VERSION}, please upgrade your client to a newer "
                                           "version")
            request["api_version"] = wanted
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except BerthError as exc:
        return error_response(status_of(exc), exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body too large (limit {MAX_BODY} bytes)")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method not allowed")
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPException as exc:
        return error_response(exc.status, exc.reason)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:  # a bug: Docker's 500, one line; the trace goes to our stderr
        import traceback

        traceback.print_exc(file=sys.stderr)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
    finally:
        service.in_flight -= 1
        service.last_active = time.monotonic()


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    from berth.core import __version__

    response.headers["Api-Version"] = API_VERSION
    response.headers["Server"] = f"Berth/{__version__} (linux)"


def build_app(service: Service) -> web.Application:
    from berth.core.api import archive, build, containers, execs, images, networks, system, volumes

    app = web.Application(middlewares=[_middleware], client_max_size=MAX_BODY)
    app["service"] = service
    app.on_response_prepare.append(_headers)
    for module in (system, containers, archive, execs, images, build, networks, volumes):
        for method, path, handler in module.ROUTES:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/v{version:[0-9]+(\.[0-9]+)?}" + path, handler)
    return app


# -- hijacked connections need the transport to stay open after the client's EOF ---------------


class _Handler(RequestHandler):
    """aiohttp's protocol, except that a client half-closing a hijacked
    connection (stdin's EOF) ends its input only: our output goes on."""

    __slots__ = ("hijack_input",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hijack_input = None

    def eof_received(self):
        if self.hijack_input is not None:
            self.hijack_input.feed_eof()
            return True  # keep the transport open for writing
        return None


class _Server(web.Server):
    def __call__(self):
        return _Handler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self):
        server = await super()._make_server()
        server.__class__ = _Server
        return server


# -- listening -----------------------------------------------------------------------------


def default_uri(engine) -> str:
    return f"unix://{engine.runroot}/berth.sock"


def listen(uri: str) -> tuple[socket.socket, str | None]:
    """The listening socket for `uri` (or systemd's, LISTEN_FDS) and the path
    of a unix socket we made (removed at exit)."""
    fds = os.environ.get("LISTEN_FDS")
    if fds and os.environ.get("LISTEN_PID") == str(os.getpid()) and int(fds) >= 1:
        for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
        sock = socket.socket(fileno=3)
        os.set_inheritable(3, False)
        return sock, None
    parts = urlsplit(uri)
    if parts.scheme == "unix":
        return _listen_unix(parts.path or parts.netloc), (parts.path or parts.netloc)
    if parts.scheme == "tcp":
        return _listen_tcp(uri, parts), None
    raise InvalidArgument(f"unsupported URI {uri!r}: use unix:///path/to/socket or tcp://127.0.0.1:PORT")


def _listen_unix(path: str) -> socket.socket:
    if not path.startswith("/"):
        raise InvalidArgument(f"unix socket path must be absolute: {path!r}")
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: its service is gone
        else:
            raise FailedPrecondition(f"another service is already listening on unix://{path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o117)  # never visible with wider permissions than 0660
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot listen on unix://{path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    try:
        gid = grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        gid = None
    if gid is not None:
        os.chown(path, -1, gid)
    sock.listen(128)
    return sock


def _listen_tcp(uri: str, parts) -> socket.socket:
    host, port = parts.hostname, parts.port
    if not host or port is None:
        raise InvalidArgument(f"invalid URI {uri!r}: tcp://HOST:PORT expected")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise InvalidArgument(f"refusing to listen on {uri}: without TLS the API is served on a loopback "
                              "address only (127.0.0.1 or ::1), since whoever reaches it controls the host")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot listen on {uri}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def _warm(engine) -> None:
    """Import what the handlers use and load the plugins, on a pool thread, once."""
    from berth.core import plugins
    from berth.core.api import create  # noqa: F401

    try:
        engine.containers, engine.images, engine.networks, engine.volumes  # noqa: B018
        plugins.drivers("storage").get(engine.storage_driver_name)
        plugins.drivers("log").get(engine.config.get("logging.driver"))
    except Exception:  # whatever fails here fails again where it is used, and is reported there
        pass


def serve(make_engine, uri: str, idle_timeout: float) -> int:
    """Serve until SIGTERM/SIGINT or `idle_timeout` seconds without a request (0: never)."""
    sock, path = listen(uri)
    # Python ignores SIGPIPE and SIGXFSZ; exec'd processes would inherit that (as in `berth exec`).
    signal.signal(signal.SIGPIPE, lambda *_: None)
    signal.signal(signal.SIGXFSZ, lambda *_: None)
    from berth.core.api.starter import Starters

    starters = Starters(make_engine, close_in_child=[sock])  # before any thread or store exists
    try:
        asyncio.run(_serve(make_engine, sock, idle_timeout, starters))
    finally:
        starters.close()
        sock.close()
        if path:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return 0


async def _serve(make_engine, sock: socket.socket, idle_timeout: float, starters) -> None:
    loop = asyncio.get_running_loop()
    service = Service(make_engine, idle_timeout)
    service.starters = starters
    app = build_app(service)
    access = {"access_log": None}
    if os.environ.get("BERTH_API_ACCESS_LOG"):  # one line per request on stderr, for debugging clients
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        access = {"access_log_format": '%r %s %Tf'}
    runner = _Runner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS, **access)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stopping.set)
    warm = asyncio.ensure_future(service.call(_warm))  # the first request does not pay for the imports
    try:
        while not service.stopping.is_set():
            try:
                await asyncio.wait_for(service.stopping.wait(), timeout=0.25)
            except asyncio.TimeoutError:
                pass
            if idle_timeout > 0 and service.in_flight == 0 \
                    and time.monotonic() - service.last_active > idle_timeout:
                break
    finally:
        warm.cancel()
        await runner.cleanup()  # stops accepting, lets what is in flight finish
        service.pool.shutdown(wait=True, cancel_futures=True)
