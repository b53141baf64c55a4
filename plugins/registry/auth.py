"""Registry authentication: ``WWW-Authenticate`` challenges and bearer tokens.

A registry answers 401 with a challenge: ``Basic realm="..."`` (send the
credentials) or ``Bearer realm="https://auth/token",service="reg",
scope="repository:app:pull"`` (ask the realm for a token for that service
and scope, with the credentials as basic auth if there are any, anonymously
otherwise, then send ``Authorization: Bearer <token>``). Tokens are cached
per scope until shortly before they expire. Network calls live in
distribution.py; this module only parses and remembers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import namedtuple
from urllib.parse import urlencode

from berth.core.errors import RegistryError

#: tokens are dropped this long before their announced expiry
EXPIRY_MARGIN = 10.0
#: lifetime of a token whose response says nothing (the distribution spec's default)
DEFAULT_LIFETIME = 60.0


class Challenge(namedtuple("Challenge", "scheme params")):
    """One ``WWW-Authenticate`` challenge: scheme in lower case and its parameters."""

    __slots__ = ()

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges (RFC 7235, leniently).

    ``Bearer realm="r",service="s",scope="repository:a:pull,push"`` ->
    [Challenge("bearer", {"realm": "r", "service": "s", "scope": "repository:a:pull,push"})].
    Commas inside quoted values are kept.
    """
    challenges: list[Challenge] = []
    i, n = 0, len(header or "")
    text = header or ""
    current: Challenge | None = None
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in " \t,=":
            i += 1
        token = text[start:i]
        if not token:
            break
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "=" and current is not None and not text[j + 1:j + 2] == "=":
            # a parameter of the current challenge
            i = j + 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                value = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    value.append(text[i])
                    i += 1
                i += 1  # closing quote
                current.params[token.lower()] = "".join(value)
            else:
                start = i
                while i < n and text[i] not in ",":
                    i += 1
                current.params[token.lower()] = text[start:i].strip()
        else:
            current = Challenge(token.lower(), {})
            challenges.append(current)
            i = j
    return challenges


def token_url(realm: str, service: str | None, scopes: list[str]) -> str:
    """The realm URL with ``service`` and one ``scope`` parameter per scope."""
    query = []
    if service:
        query.append(("service", service))
    query += [("scope", s) for s in scopes]
    if not query:
        return realm
    return realm + ("&" if "?" in realm else "?") + urlencode(query)


def parse_token_response(body: bytes) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token endpoint's JSON answer."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("the registry's token endpoint answered with invalid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("the registry's token endpoint answered with invalid JSON")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError("the registry's token endpoint answered without a token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    return token, float(lifetime)


class TokenCache:
    """Bearer tokens by (realm, service, scopes), each until it expires. Thread-safe."""

    def __init__(self, clock=time.monotonic):
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def __repr__(self) -> str:  # tokens are credentials
        return f"<TokenCache {len(self._tokens)} tokens>"

    def get(self, key: tuple) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
            if found is None:
                return None
            token, expires = found
            if self._clock() >= expires:
                del self._tokens[key]
                return None
            return token

    def put(self, key: tuple, token: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[key] = (token, self._clock() + lifetime - min(EXPIRY_MARGIN, lifetime / 2))

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
