"""The build context (berth.core.build.context) and the build's scratch directories
(berth.core.build.scratch), without root and without an engine."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from types import SimpleNamespace

import pytest

from berth.core.build.context import Context, SourceError, looks_like_archive
from berth.core.build.ignore import Matcher
from berth.core.build.parser import DockerfileError
from berth.core.build.scratch import Scratch, reap


def make(tmp_path, files: dict[str, str], ignore: str = "") -> Context:
    root = tmp_path / "ctx"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(data)
    root.mkdir(exist_ok=True)
    return Context(root, "FROM scratch\n", Matcher.parse(ignore))


def test_walk_lists_parents_first_and_leaves_out_what_is_ignored(tmp_path):
    ctx = make(tmp_path, {"a/b/c.txt": "", "a/b/skip.log": "", "a/z": "", "docs/keep.md": "", "docs/drop.md": ""},
               "**/*.log\ndocs\n!docs/keep.md\n")
    paths = list(ctx.walk("."))
    assert sorted(paths) == ["a", "a/b", "a/b/c.txt", "a/z", "docs/keep.md"]
    assert paths.index("a") < paths.index("a/b") < paths.index("a/b/c.txt")
    assert list(ctx.walk("a/b")) == ["a/b/c.txt"]


def test_glob_matches_within_one_component(tmp_path):
    ctx = make(tmp_path, {"x1.txt": "", "x2.txt": "", "sub/x3.txt": "", "y.md": ""})
    assert ctx.glob("x*.txt") == ["x1.txt", "x2.txt"]
    assert ctx.glob("*/x?.txt") == ["sub/x3.txt"]
    assert ctx.glob("nothing*") == []


def test_sources_stay_inside_the_context(tmp_path):
    ctx = make(tmp_path, {"in/file": "inside"})
    (tmp_path / "outside").write_text("outside")
    with pytest.raises(SourceError, match=r"forbidden path outside the build context: \.\./outside \(\)"):
        ctx.clean("../outside")
    assert ctx.clean("/in/../in/file") == "in/file" and ctx.clean("./") == "."
    os.symlink("/", ctx.root / "up")  # a symlinked parent resolves inside the root
    assert ctx.host_path("up/in/file") == str(ctx.root / "in" / "file")
    os.symlink(str(tmp_path / "outside"), ctx.root / "link")  # the source itself is kept as the link
    assert os.path.islink(ctx.host_path("link"))
    with pytest.raises(SourceError, match="file not found in build context"):
        ctx.lstat("missing")


def test_a_stream_is_a_context_tar_or_a_dockerfile(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY f /f\n"), ("f", b"file")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert looks_like_archive(buf.getvalue()[:512]) and not looks_like_archive(b"FROM scratch\n")
    for data in (buf.getvalue(), gzip.compress(buf.getvalue())):
        with Context.from_stream(io.BytesIO(data), tmp_path) as ctx:
            assert ctx.dockerfile.startswith("FROM scratch") and (ctx.root / "f").read_text() == "file"
            root = ctx.root
        assert not root.exists()
    with Context.from_stream(io.BytesIO(b"FROM scratch\n"), tmp_path) as ctx:
        assert ctx.dockerfile == "FROM scratch\n" and list(ctx.walk(".")) == []
    with pytest.raises(DockerfileError, match="Dockerfile"):
        Context.from_stream(io.BytesIO(buf.getvalue()), tmp_path, "other/Dockerfile")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".build-")] == []


def test_reap_removes_only_what_nobody_holds(tmp_path):
    engine = SimpleNamespace(root=tmp_path)
    held = Scratch(tmp_path)
    left = tmp_path / ".build-killed"
    (left / "sub").mkdir(parents=True)
    young = tmp_path / ".build-young"
    young.mkdir()
    old = time.time() - 3600
    for path in (held.path, left):
        os.utime(path, (old, old))
    assert reap(engine) == [".build-killed"]
    assert os.path.isdir(held.path) and young.is_dir() and not left.exists()
    held.close()
    assert not os.path.exists(held.path)
