"""One Docker layer media type (issue #11: two spellings lived in the code): a Docker
schema 2 image keeps its exact media types through pull, push, docker-archive save and
load, and push again, with the same layer digest all along."""

from __future__ import annotations

import json
import urllib.request

from berth.core.oci import mediatypes
from berth.testing.registries import make_image

ACCEPT = ", ".join((mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST))


def registry_manifest(registry, repository: str, tag: str) -> dict:
    request = urllib.request.Request(f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def serve(server, image) -> str:
    base = "/v2/src/img"
    server.routes.update({
        ("GET", "/v2/"): (200, {}, b"{}"),
        ("GET", f"{base}/manifests/1"): (200, {"Content-Type": image.media_type}, image.manifest),
        ("GET", f"{base}/blobs/{image.config_digest}"): (200, {}, image.config),
        ("GET", f"{base}/blobs/{image.layer_digest}"): (200, {}, image.layer),
    })
    return f"{server.location}/src/img:1"


def test_docker_layer_media_type_round_trips_through_registry_and_docker_archive(berth, other, registry_open,
                                                                                  fake_server_factory, tmp_path):
    image = make_image("round trip", docker=True)
    assert json.loads(image.manifest)["layers"][0]["mediaType"] == mediatypes.DOCKER_LAYER
    pulled = serve(fake_server_factory(), image)
    berth("pull", "-q", pulled, check=True)
    pushed = f"{registry_open.location}/rt/docker:1"
    berth("tag", pulled, pushed, check=True)
    berth("push", pushed, check=True)
    manifest = registry_manifest(registry_open, "rt/docker", "1")
    assert manifest["mediaType"] == mediatypes.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == mediatypes.DOCKER_CONFIG
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == \
        [(mediatypes.DOCKER_LAYER, image.layer_digest)]
    # docker-archive carries no media types: load names its layers by their bytes, consistently
    archive = tmp_path / "docker.tar"
    berth("save", "-o", str(archive), pushed, check=True)
    other("load", "-i", str(archive), check=True)
    again = f"{registry_open.location}/rt/loaded:1"
    other("tag", pushed, again, check=True)
    other("push", again, check=True)
    manifest = registry_manifest(registry_open, "rt/loaded", "1")
    kinds = {mediatypes.DOCKER_MANIFEST: mediatypes.DOCKER_LAYER, mediatypes.OCI_MANIFEST: mediatypes.OCI_LAYER + "+gzip"}
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == \
        [(kinds[manifest["mediaType"]], image.layer_digest)]
    info = json.loads(other("inspect", again, check=True).stdout)[0]
    assert info["RootFS"]["Layers"] == json.loads(image.config)["rootfs"]["diff_ids"]
