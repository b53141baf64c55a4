"""`berth save` / `berth load` against real peers: skopeo and podman read
what berth writes, berth reads what skopeo writes, and hostile archives are
refused with nothing kept."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest


def inspect(b, name):
    return json.loads(b("image", "inspect", name, check=True).stdout)[0]


def stored(b) -> tuple[int, list[str]]:
    """(image rows, blob files) of an installation."""
    rows = 0
    if (b.root / "berth.db").exists():
        with sqlite3.connect(b.root / "berth.db") as db:
            rows = db.execute("SELECT count(*) FROM images").fetchone()[0]
    blob_dir = b.root / "blobs" / "sha256"
    return rows, sorted(p.name for p in blob_dir.iterdir()) if blob_dir.exists() else []


def test_save_is_read_by_skopeo_and_podman(berth, tmp_path):
    berth("tag", berth.image, "127.0.0.1:5999/me/app:v1", check=True)
    info = inspect(berth, berth.image)
    out = tmp_path / "saved.tar"
    berth("save", "-o", str(out), berth.image, "127.0.0.1:5999/me/app:v1", check=True)
    sk = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{out}"], capture_output=True, text=True,
                                   check=True).stdout)
    assert sk["Layers"] == info["RootFS"]["Layers"]
    podman_root = Path(tempfile.mkdtemp(prefix="bt-podman-"))  # podman wants a short runroot
    podman = ["podman", "--runtime", "runc", "--root", str(podman_root / "root"), "--runroot",
              str(podman_root / "run"), "--storage-driver", "vfs"]
    try:
        loaded = subprocess.run(podman + ["load", "-i", str(out)], capture_output=True, text=True, timeout=120)
        assert loaded.returncode == 0, loaded.stderr
        assert "busybox:latest" in loaded.stdout
        pid = subprocess.run(podman + ["image", "inspect", "--format", "{{.Id}}", "busybox:latest"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert "sha256:" + pid == info["Id"]
    finally:
        subprocess.run(podman + ["system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(podman_root, ignore_errors=True)


def test_oci_archive_save_is_read_by_skopeo(berth, tmp_path):
    out = tmp_path / "oci.tar"
    berth("save", "--format", "oci-archive", "-o", str(out), berth.image, check=True)
    sk = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{out}:latest"], capture_output=True,
                                   text=True, check=True).stdout)
    assert sk["Layers"] == inspect(berth, berth.image)["RootFS"]["Layers"]


def test_load_what_skopeo_wrote(berth, other, tmp_path):
    saved = tmp_path / "saved.tar"
    berth("save", "-o", str(saved), berth.image, check=True)
    layers = inspect(berth, berth.image)["RootFS"]["Layers"]
    layout = tmp_path / "layout"
    docker_archive, oci_archive = tmp_path / "d.tar", tmp_path / "o.tar"
    for src, dst in ((f"docker-archive:{saved}", f"oci:{layout}:v1"),
                     (f"oci:{layout}:v1", f"docker-archive:{docker_archive}:me/app:v1"),
                     (f"oci:{layout}:v1", f"oci-archive:{oci_archive}:v1")):
        subprocess.run(["skopeo", "copy", "-q", src, dst], check=True, capture_output=True)
    assert other("load", "-i", str(docker_archive), check=True).stdout == "Loaded image: me/app:v1\n"
    assert inspect(other, "me/app:v1")["RootFS"]["Layers"] == layers  # skopeo rewrites the config
    res = other("load", "-i", str(oci_archive), check=True)
    assert res.stdout.startswith("Loaded image ID: sha256:")
    assert inspect(other, res.stdout.split()[-1])["RootFS"]["Layers"] == layers


def test_compressed_layers_and_compressed_archives(berth, other, tmp_path):
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(berth.rootfs.read_bytes()))
    zst = tmp_path / "rootfs.tar.zst"
    subprocess.run(["zstd", "-q", "-o", str(zst), str(berth.rootfs)], check=True)
    berth("import", str(gz), "gz:1", check=True)
    berth("import", str(zst), "zst:1", check=True)
    saved = tmp_path / "both.tar"
    berth("save", "-o", str(saved), "gz:1", "zst:1", check=True)
    archived = tmp_path / "both.tar.zst"
    subprocess.run(["zstd", "-q", "-o", str(archived), str(saved)], check=True)
    out = other("load", input=archived.read_bytes(), check=True).stdout
    assert out == b"Loaded image: gz:1\nLoaded image: zst:1\n"
    for name in ("gz:1", "zst:1"):
        assert inspect(other, name)["Id"] == inspect(berth, name)["Id"]
    assert other("load", "-i", str(tmp_path / "missing.tar")).returncode == 1


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hostile_archives(rootfs: bytes) -> dict[str, tuple[bytes, str]]:
    good_layer = _tar([("hello", b"hi")])
    wrong_config = json.dumps({"os": "linux", "rootfs": {"type": "layers",
                                                         "diff_ids": ["sha256:" + "1" * 64]}}).encode()
    manifest = [{"Config": f"{_sha(wrong_config)}.json", "RepoTags": ["evil:1"], "Layers": ["l/layer.tar"]}]
    fine_config = json.dumps({"os": "linux", "rootfs": {"type": "layers",
                                                        "diff_ids": ["sha256:" + _sha(rootfs)]}}).encode()
    return {
        "dotdot": (_tar([("../escape", b"x"), ("manifest.json", b"[]")]), "points outside the archive"),
        "absolute": (_tar([("/tmp/escape", b"x"), ("manifest.json", b"[]")]), "absolute"),
        "digest-name": (_tar([("blobs/sha256/../../x", b"x")]), "points outside the archive"),
        "index-digest": (_tar([("index.json", json.dumps({"schemaVersion": 2, "manifests": [
            {"digest": "sha256:../x", "size": 2}]}).encode())]), "invalid digest"),
        "diff-ids": (_tar([(f"{_sha(wrong_config)}.json", wrong_config), ("l/layer.tar", good_layer),
                           ("manifest.json", json.dumps(manifest).encode())]), "the image config says"),
        "lying-blob": (_tar([("blobs/sha256/" + _sha(b"other"), rootfs), ("c.json", fine_config)]),
                       "digest mismatch"),
    }


@pytest.mark.parametrize("case", ["dotdot", "absolute", "digest-name", "index-digest", "diff-ids", "lying-blob"])
def test_hostile_archive_is_refused_and_nothing_is_stored(berth, tmp_path, case):
    data, message = _hostile_archives(berth.rootfs.read_bytes())[case]
    path = tmp_path / "hostile.tar"
    path.write_bytes(data)
    res = berth("load", "-i", str(path))
    assert res.returncode == 1 and res.stderr.startswith("Error: invalid archive:"), res.stderr
    assert message in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert stored(berth) == (0, [])
    assert not (tmp_path / "escape").exists()
