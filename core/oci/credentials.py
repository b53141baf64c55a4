"""Registry credentials, kept in Docker's ``config.json`` format.

The file is ``{"auths": {"<server>": {"auth": base64("user:password")}}}``,
what `docker login` and `podman login` write, so either can read berth's and
berth can read theirs. Where it lives, first match wins:

1. the `path` argument of each function (`--authfile`);
2. ``$BERTH_AUTH_FILE``;
3. ``~/.config/berth/auth.json``.

`load` also reads Docker's own ``~/.docker/config.json`` (``$DOCKER_CONFIG``)
after berth's file, with its credential helpers (`credsStore`,
`credHelpers`: the ``docker-credential-*`` programs).

Server keys are normalized as Docker does: Docker Hub (``docker.io``,
``index.docker.io``, ``registry-1.docker.io``, its URLs) is stored under
``https://index.docker.io/v1/``; any other registry under its
``host[:port]``. A key written by another tool as a URL
(``https://host:5000/v2/``) is found too.

The file is replaced atomically (temporary file, fsync, rename) with mode
0600 in a 0700 directory; keys berth does not know (``credsStore``,
``HttpHeaders`` ...) are kept. Passwords never appear in a repr or a message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import tempfile
from collections import namedtuple
from pathlib import Path

from berth.core.errors import Corrupt

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


class Credentials(namedtuple("Credentials", "username password")):
    """A username and password; unpacks as a tuple, prints without the password."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    __str__ = __repr__


def default_path() -> Path:
    """``$BERTH_AUTH_FILE``, else ``~/.config/berth/auth.json``."""
    env = os.environ.get("BERTH_AUTH_FILE")
    if env:
        return Path(env)
    return Path.home() / ".config" / "berth" / "auth.json"


def hostname(server: str) -> str:
    """``host[:port]`` of a server given as a name or a URL (Docker's ConvertToHostname)."""
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
            break
    return s.split("/", 1)[0]


def server_key(server: str) -> str:
    """The key `server` is stored under: Docker Hub's URL, else ``host[:port]``."""
    host = hostname(server)
    return DOCKER_HUB_KEY if host in _HUB_NAMES else host


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise Corrupt(f"{path}: invalid credentials file: not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("auths", {}), dict):
        raise Corrupt(f"{path}: invalid credentials file: \"auths\" is not an object")
    return data


def _matching_keys(auths: dict, server: str) -> list[str]:
    """Keys of `auths` that name `server` (exact key first, then URL forms)."""
    wanted = server_key(server)
    keys = [k for k in auths if k == wanted]
    keys += [k for k in auths if k != wanted and server_key(k) == wanted]
    return keys


def _decode(entry, path: Path, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            raw = base64.b64decode(entry["auth"], validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise Corrupt(f"{path}: invalid credentials for {key}: \"auth\" is not base64") from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise Corrupt(f"{path}: invalid credentials for {key}: \"auth\" is not user:password")
        return Credentials(user, password)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    return None


def docker_config_path() -> Path:
    """Where `docker login` keeps its credentials: ``$DOCKER_CONFIG/config.json``,
    else ``~/.docker/config.json``."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def load(server: str, path: Path | str | None = None) -> Credentials | None:
    """The credentials for `server`, or None.

    With `path` (--authfile), from that file only. Otherwise from berth's
    own file, then from what `docker login` left (docker_config_path), as
    podman does. In each file: the registry's `credHelpers` entry, else a
    password in `auths`, else the `credsStore` helper (the
    ``docker-credential-*`` programs, berth.core.oci.credhelper).
    """
    paths = [Path(path)] if path else [default_path(), docker_config_path()]
    for one in paths:
        found = _load_from(one, server)
        if found:
            return found
    return None


def _load_from(path: Path, server: str) -> Credentials | None:
    """The registry's `credHelpers` helper, else a password in `auths`
    (what berth and podman write, whatever `credsStore` says), else the
    `credsStore` helper."""
    data = _read(path)
    helpers = data.get("credHelpers") if isinstance(data.get("credHelpers"), dict) else {}
    key = server_key(server)
    helper = next((helpers[k] for k in helpers if server_key(k) == key), None)
    if not helper:
        auths = data.get("auths", {})
        for found_key in _matching_keys(auths, server):
            found = _decode(auths[found_key], path, found_key)
            if found:
                return found
        helper = data.get("credsStore")
    if isinstance(helper, str) and helper:
        from berth.core.oci import credhelper

        found = credhelper.get(helper, key)
        if found:
            return Credentials(*found)
    return None


@contextlib.contextmanager
def _locked(path: Path):
    """Serialize read-modify-write of the file between processes."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".auth-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def store(server: str, username: str, password: str, path: Path | str | None = None) -> None:
    """Save credentials for `server`, replacing any it had."""
    path = Path(path) if path else default_path()
    with _locked(path):
        data = _read(path)
        auths = data.setdefault("auths", {})
        for key in _matching_keys(auths, server):
            del auths[key]
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        auths[server_key(server)] = {"auth": token}
        _write(path, data)


def remove(server: str, path: Path | str | None = None) -> bool:
    """Forget the credentials of `server`; False when there were none."""
    path = Path(path) if path else default_path()
    if not path.exists():
        return False
    with _locked(path):
        data = _read(path)
        auths = data.get("auths", {})
        keys = _matching_keys(auths, server)
        if not keys:
            return False
        for key in keys:
            del auths[key]
        _write(path, data)
        return True


#: the name berth.core.cli.registry uses
erase = remove
