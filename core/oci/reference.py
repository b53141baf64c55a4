"""Image references: ``[registry[:port]/][namespace/]repository[:tag][@digest]``.

The grammar and the error texts are those of the distribution reference
library that Docker uses. Defaults: registry docker.io, namespace library
(on docker.io only), tag latest (unless a digest is given).
"""

from __future__ import annotations

import re
from collections import namedtuple

from berth.core.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
NAME_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_ANY_CASE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?[a-zA-Z0-9._/-]+?)(?::{_TAG})?(?:@{_DIGEST})?$"
)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ID_RE = re.compile(r"^(?:sha256:)?[0-9a-f]{1,64}$")


class Reference(namedtuple("Reference", "registry repository tag digest", defaults=(None, None))):
    """An image reference, normalized: registry ``docker.io``, repository
    ``library/busybox``, tag ``latest`` or None, digest ``sha256:...`` or None.
    (A named tuple rather than a dataclass: dataclasses cost every command a
    few milliseconds to import and build.)"""

    __slots__ = ()

    @property
    def name(self) -> str:
        """Fully qualified repository: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """As Docker prints it: ``busybox``, ``me/app``, ``127.0.0.1:5000/app``."""
        if self.registry == DEFAULT_REGISTRY:
            repo = self.repository
            return repo[len("library/"):] if repo.startswith("library/") and repo.count("/") == 1 else repo
        return self.name

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self) -> str:
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_tag(self, tag: str | None) -> "Reference":
        return self._replace(tag=tag, digest=None)


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_REGISTRY, name
    if domain in ("index.docker.io", "registry-1.docker.io"):
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalize a reference; raise InvalidArgument with Docker's text."""
    m = _REFERENCE.match(text)
    if not m:
        loose = _ANY_CASE.match(text)
        if loose and loose.group("name") != loose.group("name").lower():
            domain, remainder = _split_domain(loose.group("name"))
            if remainder != remainder.lower():
                raise InvalidArgument(
                    f"invalid reference format: repository name ({remainder}) must be lowercase"
                )
        raise InvalidArgument("invalid reference format")
    name = m.group("name")
    if len(name) > NAME_MAX:
        raise InvalidArgument(f"invalid reference format: repository name must not be more than {NAME_MAX} characters")
    domain, remainder = _split_domain(name)
    tag, digest = m.group("tag"), m.group("digest")
    if digest and not DIGEST_RE.match(digest):
        raise InvalidArgument("invalid reference format")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, remainder, tag, digest)


def is_digest(text: str) -> bool:
    return bool(DIGEST_RE.match(text))
