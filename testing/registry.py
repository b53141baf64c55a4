"""The registry suite: what every Registry (image transport) driver must do.

A driver is built as ``cls(location, {"insecure": True, **options})``
(options: ``--berth-conformance-opt``). Its ``location_kind`` says what
`location` is: ``"host"``, the ``127.0.0.1:PORT`` of a real registry
(Debian's ``docker-registry``, started once per module; needs the package),
or ``"path"``, a fresh path in a temporary directory. Cases against a
scripted lying registry run for ``"host"`` drivers only.
"""

from __future__ import annotations

import io
import json
import secrets
import threading

import pytest

from berth.core import plugins
from berth.core.drivers import Registry
from berth.core.errors import Corrupt, InvalidArgument, NotFound, RegistryError
from berth.testing.registries import OCI_MANIFEST, make_image, sha256
from berth.testing.support import free_port


def push(driver, repo: str, image, tag: str = "v1") -> str:
    for digest, data in image.blobs.items():
        driver.put_blob(repo, digest, len(data), io.BytesIO(data))
    return driver.put_manifest(repo, tag, image.manifest, image.media_type)


MALFORMED = ["sha256:../x", "sha256:" + "a" * 63, "sha256:" + "A" * 64, "sha256:" + "a" * 65,
             "md5:" + "a" * 32, "sha256:" + "a" * 63 + "/", "sha256"]


def _manifest_route(body: bytes, content_type: str = OCI_MANIFEST, **headers):
    return (200, {"Content-Type": content_type, **headers}, body)


class RegistrySuite:
    KIND = "registry"
    DRIVERS: list[str] | None = None

    @pytest.fixture
    def driver_cls(self, driver_name):
        return plugins.drivers("registry").supported(driver_name)

    @pytest.fixture
    def location(self, driver_cls, request, tmp_path):
        """Where the driver under test reads and writes (see the module's doc)."""
        if driver_cls.location_kind == "path":
            return str(tmp_path / "registry")
        return request.getfixturevalue("registry_open").location

    @pytest.fixture
    def make_driver(self, driver_cls, driver_options):
        """``make(location, **options)``: a driver over plain HTTP (127.0.0.1 only)."""
        made = []

        def make(location: str, **options):
            driver = driver_cls(location, {"insecure": True, **driver_options, **options})
            made.append(driver)
            return driver

        yield make
        for driver in made:
            close = getattr(driver, "close", None)
            if close:
                close()

    @pytest.fixture
    def repo(self):
        """A repository name no other case uses."""
        return f"conformance/bt{secrets.token_hex(4)}"

    def test_registered_name_matches(self, driver_name, driver_cls):
        assert issubclass(driver_cls, Registry)
        assert driver_cls.name == driver_name
        assert driver_cls.location_kind in ("host", "path")

    @pytest.mark.parametrize("digest", MALFORMED)
    def test_malformed_digests_are_refused(self, location, make_driver, digest):
        driver = make_driver(location)
        for call in (lambda: driver.get_blob("r", digest), lambda: driver.has_blob("r", digest),
                     lambda: driver.put_blob("r", digest, 1, io.BytesIO(b"x"))):
            with pytest.raises((Corrupt, InvalidArgument)):
                call()

    def test_blob_round_trip(self, location, make_driver, repo):
        driver = make_driver(location)
        data = b"some config bytes\n" * 100
        digest = sha256(data)
        assert driver.has_blob(repo, digest) is False
        assert driver.put_blob(repo, digest, len(data), io.BytesIO(data)) is False
        assert driver.has_blob(repo, digest) is True
        with driver.get_blob(repo, digest) as stream:
            assert stream.read() == data

    @pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-schema2"])
    def test_manifest_round_trip_by_tag_and_digest(self, location, make_driver, repo, docker):
        driver = make_driver(location)
        image = make_image(docker=docker)
        assert push(driver, repo, image) == image.digest
        for reference in ("v1", image.digest):
            data, media_type, digest = driver.get_manifest(repo, reference, [image.media_type, OCI_MANIFEST])
            assert data == image.manifest  # byte-identical
            assert media_type == image.media_type
            assert digest == image.digest

    def test_unknown_tag_blob_and_repository(self, location, make_driver, repo):
        driver = make_driver(location)
        push(driver, repo, make_image())
        with pytest.raises(NotFound, match="manifest unknown"):
            driver.get_manifest(repo, "nope", [OCI_MANIFEST])
        missing = sha256(b"never pushed")
        assert driver.has_blob(repo, missing) is False
        with pytest.raises(NotFound, match="blob unknown"):
            driver.get_blob(repo, missing)
        with pytest.raises(NotFound, match="name unknown"):
            driver.list_tags(repo + "-missing")

    def test_list_tags_and_catalog(self, location, make_driver, repo):
        driver = make_driver(location)
        image = make_image()
        for tag in ("a", "b", "c"):
            push(driver, repo, image, tag)
        assert sorted(driver.list_tags(repo)) == ["a", "b", "c"]
        assert repo in driver.catalog()

    @pytest.mark.berth_driver(location_kind="host")
    def test_cross_repository_mount(self, location, make_driver, repo):
        driver = make_driver(location)
        image = make_image("mounted")
        push(driver, repo, image)
        other = repo + "-copy"
        assert driver.has_blob(other, image.layer_digest) is False
        mounted = driver.put_blob(other, image.layer_digest, len(image.layer), io.BytesIO(b""), mount_from=repo)
        assert mounted is True
        assert driver.has_blob(other, image.layer_digest) is True

    @pytest.mark.berth_driver(location_kind="host")
    def test_mount_from_a_repository_without_the_blob_uploads(self, location, make_driver, repo):
        driver = make_driver(location)
        data = b"not mountable"
        assert driver.put_blob(repo, sha256(data), len(data), io.BytesIO(data), mount_from=repo + "-empty") is False
        assert driver.get_blob(repo, sha256(data)).read() == data

    def test_parallel_blob_downloads(self, location, make_driver, repo):
        driver = make_driver(location)
        blobs = [bytes([i]) * (200_000 + i) for i in range(8)]
        for data in blobs:
            driver.put_blob(repo, sha256(data), len(data), io.BytesIO(data))
        results, errors = {}, []

        def fetch(data):
            try:
                for _ in range(3):
                    results[sha256(data)] = driver.get_blob(repo, sha256(data)).read()
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=fetch, args=(d,)) for d in blobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert all(results[sha256(d)] == d for d in blobs)

    def test_repr_hides_credentials(self, location, make_driver):
        driver = make_driver(location, credentials=("someone", "hunter2-secret"))
        assert "hunter2-secret" not in repr(driver)
        assert "hunter2-secret" not in str(driver)

    # -- against a lying registry ---------------------------------------------------------

    @pytest.mark.berth_driver(location_kind="host")
    @pytest.mark.parametrize("digest", MALFORMED)
    def test_malformed_digests_are_refused_before_any_request(self, fake_server_factory, make_driver, digest):
        server = fake_server_factory()
        driver = make_driver(server.location)
        for call in (lambda: driver.get_blob("r", digest), lambda: driver.has_blob("r", digest),
                     lambda: driver.put_blob("r", digest, 1, io.BytesIO(b"x"))):
            with pytest.raises((Corrupt, InvalidArgument)):
                call()
        if ":" in digest:
            with pytest.raises((Corrupt, InvalidArgument)):
                driver.get_manifest("r", digest, [OCI_MANIFEST])
        assert server.requests == []

    @pytest.mark.berth_driver(location_kind="host")
    def test_manifest_by_digest_with_other_bytes_is_corrupt(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        wanted, served = make_image("wanted"), make_image("served instead")
        server.routes[("GET", f"/v2/r/manifests/{wanted.digest}")] = _manifest_route(served.manifest)
        with pytest.raises(Corrupt, match="digest"):
            make_driver(server.location).get_manifest("r", wanted.digest, [OCI_MANIFEST])

    @pytest.mark.berth_driver(location_kind="host")
    def test_lying_docker_content_digest_is_corrupt(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        image = make_image()
        server.routes[("GET", "/v2/r/manifests/v1")] = _manifest_route(
            image.manifest, **{"Docker-Content-Digest": sha256(b"something else")})
        with pytest.raises(Corrupt, match="digest"):
            make_driver(server.location).get_manifest("r", "v1", [OCI_MANIFEST])

    @pytest.mark.berth_driver(location_kind="host")
    def test_digest_is_computed_from_the_bytes(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        image = make_image()
        server.routes[("GET", "/v2/r/manifests/v1")] = _manifest_route(image.manifest)  # no digest header
        assert make_driver(server.location).get_manifest("r", "v1", [OCI_MANIFEST])[2] == image.digest

    @pytest.mark.berth_driver(location_kind="host")
    @pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked-unknown-length"])
    def test_oversized_manifest_is_refused(self, fake_server_factory, make_driver, announced):
        server = fake_server_factory()
        body = b'{"schemaVersion":2,"pad":"' + b"x" * (4 << 20) + b'"}'
        if announced:
            server.routes[("GET", "/v2/r/manifests/big")] = (200, {"Content-Type": OCI_MANIFEST}, body)
        else:
            def route(handler):  # no Content-Length: the body ends when the connection closes
                handler.close_connection = True
                return 200, {"Content-Type": OCI_MANIFEST, "Connection": "close", "Content-Length": None}, body

            server.routes[("GET", "/v2/r/manifests/big")] = route
        with pytest.raises(Corrupt, match="limit"):
            make_driver(server.location).get_manifest("r", "big", [OCI_MANIFEST])

    @pytest.mark.berth_driver(location_kind="host")
    def test_media_type_disagreeing_with_content_type_is_refused(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        image = make_image()  # an OCI manifest ...
        server.routes[("GET", "/v2/r/manifests/v1")] = _manifest_route(
            image.manifest, "application/vnd.docker.distribution.manifest.list.v2+json")  # ... served as a list
        with pytest.raises(Corrupt, match="mediaType"):
            make_driver(server.location).get_manifest("r", "v1", [OCI_MANIFEST])

    @pytest.mark.berth_driver(location_kind="host")
    def test_blob_with_other_bytes_is_corrupt(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        digest = sha256(b"the real content")
        server.routes[("GET", f"/v2/r/blobs/{digest}")] = (200, {}, b"the fake content")
        stream = make_driver(server.location).get_blob("r", digest)
        with pytest.raises(Corrupt, match="digest"):
            while stream.read(4):
                pass

    @pytest.mark.berth_driver(location_kind="host")
    def test_truncated_blob_is_corrupt(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        data = b"0123456789" * 1000
        digest = sha256(data)

        def route(handler):
            handler.close_connection = True  # promise everything, send half, hang up
            return 200, {"Content-Length": str(len(data)), "Connection": "close"}, data[:5000]

        server.routes[("GET", f"/v2/r/blobs/{digest}")] = route
        stream = make_driver(server.location).get_blob("r", digest)
        with pytest.raises(Corrupt):
            while stream.read(1000):
                pass

    @pytest.mark.berth_driver(location_kind="host")
    def test_server_error_is_a_registry_error(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        server.routes[("GET", "/v2/r/manifests/v1")] = (500, {}, b"boom")
        with pytest.raises(RegistryError, match="500") as info:
            make_driver(server.location).get_manifest("r", "v1", [OCI_MANIFEST])
        assert "\n" not in str(info.value)

    @pytest.mark.berth_driver(location_kind="host")
    def test_unreachable_registry_is_one_line(self, make_driver):
        with pytest.raises(RegistryError) as info:
            make_driver(f"127.0.0.1:{free_port()}").get_manifest("r", "v1", [OCI_MANIFEST])
        assert "connection refused" in str(info.value)
        assert "\n" not in str(info.value)

    @pytest.mark.berth_driver(location_kind="host")
    def test_registry_json_errors_are_translated(self, fake_server_factory, make_driver):
        server = fake_server_factory()
        body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}).encode()
        server.routes[("GET", "/v2/r/manifests/v9")] = (404, {"Content-Type": "application/json"}, body)
        with pytest.raises(NotFound, match="manifest unknown"):
            make_driver(server.location).get_manifest("r", "v9", [OCI_MANIFEST])
