"""`run --rm` that fails after the container was created removes it (issue #11)."""

from __future__ import annotations

import os

from harness import install_plugin

REFUSER = """
    from berth.core.errors import FailedPrecondition
    from berth.core.hookspecs import hookimpl

    @hookimpl
    def container_pre_start(container):
        raise FailedPrecondition("refused by policy")
"""


def test_a_start_refused_by_a_hook_removes_the_rm_container(berth, tmp_path):
    berth.image
    install_plugin(tmp_path / "site", "btrefuser", REFUSER)
    berth.env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + [p for p in [berth.env.get("PYTHONPATH")]
                                                                           if p]))
    for detach in ([], ["-d"]):
        proc = berth("run", *detach, "--rm", "--network", "none", berth.image, "true")
        assert proc.returncode != 0 and "refused by policy" in proc.stderr, proc.stderr
        assert berth("ps", "-aq").stdout == "", detach
    # without --rm the container stays, Created, as in Docker
    proc = berth("run", "--network", "none", "--name", "kept", berth.image, "true")
    assert proc.returncode == 125 and "refused by policy" in proc.stderr
    assert berth("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout == "kept created\n"


def test_an_unknown_user_removes_the_rm_container(berth):
    for detach in ([], ["-d"]):
        proc = berth("run", *detach, "--rm", "--network", "none", "--user", "nosuchuser", berth.image, "true")
        assert proc.returncode == 125 and "unable to find user nosuchuser" in proc.stderr, proc.stderr
        assert berth("ps", "-aq").stdout == ""


def many_layers_archive(path, count: int) -> None:
    """A docker-archive of an image with `count` one-file layers (overlay2 mounts at most ~128)."""
    import hashlib
    import io
    import json
    import tarfile

    def add(out, name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w") as out:
        layers, diff_ids = [], []
        for i in range(count):
            raw = io.BytesIO()
            with tarfile.open(fileobj=raw, mode="w") as layer:
                add(layer, f"f{i}", b"x")
            digest = hashlib.sha256(raw.getvalue()).hexdigest()
            add(out, f"{digest}/layer.tar", raw.getvalue())
            layers.append(f"{digest}/layer.tar")
            diff_ids.append(f"sha256:{digest}")
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/f0"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        name = hashlib.sha256(config).hexdigest() + ".json"
        add(out, name, config)
        add(out, "manifest.json", json.dumps([{"Config": name, "RepoTags": ["many:layers"], "Layers": layers}]).encode())


def test_an_image_with_too_many_layers_removes_the_rm_container(berth, tmp_path):
    many_layers_archive(tmp_path / "many.tar", 200)
    berth("load", "-i", str(tmp_path / "many.tar"), check=True, timeout=120)
    for detach in ([], ["-d"]):
        proc = berth("run", *detach, "--rm", "--network", "none", "many:layers")
        assert proc.returncode == 125 and "too many ancestors" in proc.stderr, proc.stderr
        assert berth("ps", "-aq").stdout == ""
