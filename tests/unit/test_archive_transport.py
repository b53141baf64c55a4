"""The docker-archive / oci-archive transport: reading what others write,
writing what others read, and refusing hostile archives without keeping
anything."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
from rootfs import tar_of

from berth.core.errors import Corrupt
from berth.core.oci.content import ContentStore
from berth.plugins.registry.archive import ArchiveReader, ArchiveWriter


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(*layers: bytes) -> bytes:
    return json.dumps({"architecture": "amd64", "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}}).encode()


def archive(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """members: (name, data, symlink target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return ContentStore(tmp_path)


def blobs(store: ContentStore) -> list[str]:
    return sorted(p.name for p in store.dir.iterdir())


def test_legacy_docker_save_layout_with_symlinked_layer(store):
    layer = tar_of({"hello": b"hi"})
    config = config_for(layer)
    cfg_hex = sha(config).split(":")[1]
    manifest = [{"Config": f"{cfg_hex}.json", "RepoTags": ["me/app:1"], "Layers": ["abc/layer.tar"]}]
    data = archive([
        (f"{cfg_hex}.json", config, None),
        ("blobs/sha256/" + sha(layer).split(":")[1], layer, None),
        ("abc/layer.tar", None, "../blobs/sha256/" + sha(layer).split(":")[1]),
        ("manifest.json", json.dumps(manifest).encode(), None),
    ])
    reader = ArchiveReader(store)
    (image,) = reader.read(io.BytesIO(data))
    assert image.names == ["me/app:1"]
    doc = json.loads(image.manifest)
    assert doc["config"]["digest"] == sha(config)
    assert [l["digest"] for l in doc["layers"]] == [sha(layer)]
    assert reader.get_blob("", sha(layer)).read() == layer


def test_gzip_compressed_archive_and_layers_round_trip(store, tmp_path):
    layer = gzip.compress(tar_of({"a": b"1"}))
    config = config_for(tar_of({"a": b"1"}))
    for d in (layer, config):
        store.put_bytes(d)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config),
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer),
                            "size": len(layer)}]}
    out = io.BytesIO()
    writer = ArchiveWriter(out, "docker-archive")
    for d in (layer, config):
        writer.put_blob("", sha(d), len(d), io.BytesIO(d))
    data = json.dumps(manifest).encode()
    writer.put_manifest("", None, data, manifest["mediaType"], names=["docker.io/library/x:2"])
    writer.close()
    written = json.loads(tarfile.open(fileobj=io.BytesIO(out.getvalue())).extractfile("manifest.json").read())
    assert written[0]["RepoTags"] == ["x:2"]
    other = ContentStore(tmp_path / "other")
    (image,) = ArchiveReader(other).read(io.BytesIO(gzip.compress(out.getvalue())))
    assert image.names == ["x:2"]
    assert json.loads(image.manifest)["layers"][0]["mediaType"].endswith("+gzip")


def test_oci_layout_index_names(store):
    layer = tar_of({"f": b"x"})
    config = config_for(layer)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": sha(config), "size": len(config)},
                           "layers": [{"digest": sha(layer), "size": len(layer)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "reg.example:5000/ns/app:v3"}}]}
    data = archive([("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
                    ("index.json", json.dumps(index).encode(), None)]
                   + [("blobs/sha256/" + sha(d).split(":")[1], d, None) for d in (layer, config, manifest)])
    (image,) = ArchiveReader(store).read(io.BytesIO(data))
    assert image.names == ["reg.example:5000/ns/app:v3"]
    assert image.digest == sha(manifest)


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "a/../../evil", "blobs/sha256/../../x"])
def test_member_escaping_the_archive_is_refused(store, name):
    with pytest.raises(Corrupt, match="outside the archive|absolute"):
        ArchiveReader(store).read(io.BytesIO(archive([(name, b"x", None)])))


def test_symlink_escaping_the_archive_is_refused(store):
    with pytest.raises(Corrupt, match="outside the archive"):
        ArchiveReader(store).read(io.BytesIO(archive([("l/layer.tar", None, "../../etc/passwd")])))


def test_blob_whose_content_lies_about_its_name_is_refused(store):
    name = "blobs/sha256/" + "0" * 64
    reader = ArchiveReader(store)
    with pytest.raises(Corrupt, match="digest mismatch"):
        reader.read(io.BytesIO(archive([(name, b"not that", None)])))
    assert blobs(store) == []  # the verifying write kept nothing


def test_bad_digest_in_index_is_refused(store):
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:../x", "size": 1}]}
    with pytest.raises(Corrupt, match="invalid digest"):
        ArchiveReader(store).read(io.BytesIO(archive([("index.json", json.dumps(index).encode(), None)])))


def test_layer_missing_from_the_archive(store):
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": ["nope/layer.tar"]}]
    data = archive([("c.json", b"{}", None), ("manifest.json", json.dumps(manifest).encode(), None)])
    with pytest.raises(Corrupt, match="'nope/layer.tar' is not in the archive"):
        ArchiveReader(store).read(io.BytesIO(data))


def test_not_an_image_archive(store):
    with pytest.raises(Corrupt, match="neither manifest.json nor index.json"):
        ArchiveReader(store).read(io.BytesIO(archive([("hello.txt", b"hi", None)])))
    with pytest.raises(Corrupt, match="invalid archive"):
        ArchiveReader(store).read(io.BytesIO(b"this is not a tar at all" * 100))
