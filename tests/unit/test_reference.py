import pytest

from berth.core.errors import InvalidArgument
from berth.core.oci import reference as refs


@pytest.mark.parametrize("text, registry, repository, tag, digest, familiar", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
    ("me/app", "docker.io", "me/app", "latest", None, "me/app:latest"),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None, "busybox:latest"),
    ("127.0.0.1:5000/ns/repo:v1", "127.0.0.1:5000", "ns/repo", "v1", None, "127.0.0.1:5000/ns/repo:v1"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost/app:latest"),
    ("quay.io/a/b/c", "quay.io", "a/b/c", "latest", None, "quay.io/a/b/c:latest"),
    ("busybox@sha256:" + "ab" * 32, "docker.io", "library/busybox", None, "sha256:" + "ab" * 32,
     "busybox@sha256:" + "ab" * 32),
])
def test_parse_normalizes_like_docker(text, registry, repository, tag, digest, familiar):
    ref = refs.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.familiar == familiar


def test_uppercase_repository_gets_dockers_message():
    with pytest.raises(InvalidArgument) as e:
        refs.parse("Busybox")
    assert str(e.value) == "invalid reference format: repository name (library/Busybox) must be lowercase"


@pytest.mark.parametrize("text", ["", "a:b:c", "-x", "x/", "busybox:" + "t" * 129, "busybox@sha256:../x",
                                  "busybox@sha256:abc", "a//b", "busybox:-tag"])
def test_invalid_references(text):
    with pytest.raises(InvalidArgument, match="^invalid reference format"):
        refs.parse(text)


def test_name_length_limit():
    with pytest.raises(InvalidArgument, match="must not be more than 255 characters"):
        refs.parse("a" * 256)
