"""Input that ended in `internal error: <Python exception>` (issue #11): each is one clear
line naming what was wrong, Docker's exit code, and nothing half-made."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest


def one_line(p, code: int, *words: str) -> None:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == code and len(lines) == 1, (p.returncode, p.stderr)
    assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def blobs(berth) -> list[str]:
    path = berth.root / "blobs" / "sha256"
    return sorted(os.listdir(path)) if path.exists() else []


def test_a_registry_port_out_of_range(berth):
    one_line(berth("pull", "localhost:99999/x"), 1, "localhost:99999", "invalid port")


def test_a_user_id_out_of_range(berth):
    for user in ("99999999999", "0:99999999999"):
        one_line(berth("run", "--rm", "--network", "none", "--user", user, berth.image, "true"), 125,
                 "uids and gids must be in range 0-2147483647")
    assert berth("ps", "-aq", check=True).stdout == ""  # --rm: nothing left


def test_an_absurd_memory_limit(berth):
    for size in ("99999999999999999999999g", "9" * 400):
        one_line(berth("run", "--rm", "--network", "none", "--memory", size, berth.image, "true"), 125,
                 "invalid size", "value out of range")
    assert berth("ps", "-aq", check=True).stdout == ""


def test_a_binary_or_unreadable_configuration_file(berth, tmp_path):
    for name, content in (("binary.toml", os.urandom(64) + b"\xff\xfe"), ("latin1.toml", b'a = "caf\xe9"\n')):
        path = tmp_path / name
        path.write_bytes(content)
        berth.env["BERTH_CONFIG"] = str(path)
        one_line(berth("images"), 125, str(path))
    berth.env["BERTH_CONFIG"] = str(tmp_path)
    one_line(berth("images"), 125, str(tmp_path))


@pytest.mark.parametrize("damage", ["header", "pages"])
def test_a_corrupted_database(berth, damage):
    berth("create", "--name", "before", "--network", "none", berth.image, "true", check=True)
    berth("rm", "before", check=True)
    db = berth.root / "berth.db"
    import sqlite3

    with sqlite3.connect(db) as conn:  # everything into the main file, so damage there counts
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:
        if damage == "header":
            f.write(os.urandom(100))
        else:
            f.seek(4096)
            f.write(os.urandom(os.path.getsize(db) - 4096))
    for command in (["images"], ["ps", "-a"], ["volume", "ls"], ["run", "--rm", berth.image, "true"]):
        one_line(berth(*command), 125 if command[0] == "run" else 1, str(db), "cannot be used")


def layer_tar(path, entries) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def test_a_file_name_too_long_in_a_layer(berth, tmp_path):
    berth.image  # noqa: B018
    before = blobs(berth)
    for name in ("a" * 300, "dir/" + "b" * 200 + "/" + "c" * 260):
        info = tarfile.TarInfo(name)
        info.size = 1
        layer_tar(tmp_path / "long.tar", [(info, b"x")])
        one_line(berth("import", str(tmp_path / "long.tar"), "long:1"), 1, "invalid layer tar", "File name too long")
    assert berth("images", "-q", "long", check=True).stdout == ""
    assert blobs(berth) == before


def test_overlay_xattrs_in_a_layer_are_not_applied(berth, tmp_path):
    """trusted.overlay.* is overlayfs's own metadata: a layer must not set it (an opaque or a
    redirect would change what lower layers show)."""
    with tarfile.open(berth.rootfs) as src, tarfile.open(tmp_path / "img.tar", "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            if member.name.strip("./") == "bin" and member.isdir():
                member.pax_headers = {"SCHILY.xattr.trusted.overlay.opaque": "y",
                                      "SCHILY.xattr.trusted.overlay.redirect": "/etc"}
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    berth("import", str(tmp_path / "img.tar"), "xattrs:1", check=True)
    p = berth("run", "--rm", "--network", "none", "xattrs:1", "sh", "-c", "ls /bin | grep -c busybox")
    assert (p.returncode, p.stdout.strip()) == (0, "1"), p.stderr
    layer = json.loads(berth("image", "inspect", "xattrs:1", check=True).stdout)[0]["GraphDriver"]["Data"]
    top = layer.get("UpperDir") or layer.get("Dir") or ""
    if top:
        names = os.listxattr(os.path.join(top, "bin"), follow_symlinks=False)
        assert not [n for n in names if n.startswith("trusted.overlay.")], names
