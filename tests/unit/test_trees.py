"""Trees deeper than the Python stack (issue #11): removal and traversal
use an explicit stack. The recursion limit is lowered for each test, so a
tree of a few hundred levels stands for one of thousands."""

from __future__ import annotations

import inspect
import io
import os
import sys
import tarfile

import pytest

from berth.core.drivers import Change
from berth.core.oci import archive
from berth.core.plumbing.trees import iterate, remove_tree, walk_files

DEPTH = 400


@pytest.fixture
def shallow_stack():
    """A recursion limit only a little above the current depth: any walk that recurses per level fails."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 120)
    yield
    sys.setrecursionlimit(old)


def deep_tree(root, depth: int = DEPTH, leaf: bytes = b"x") -> str:
    """`depth` nested directories d/d/d/... under root, a file f in each; returns the relative path of the deepest."""
    rel = "/".join(["d"] * depth)
    path = str(root)
    os.mkdir(path)
    for _ in range(depth):  # os.makedirs recurses per level
        path = os.path.join(path, "d")
        os.mkdir(path)
        with open(os.path.join(path, "f"), "wb") as f:
            f.write(leaf)
    return rel


def test_remove_tree_of_any_depth(tmp_path, shallow_stack):
    deep_tree(tmp_path / "t")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("k")
    os.symlink(victim, tmp_path / "t" / "d" / "d" / "link")  # never followed
    remove_tree(tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert (victim / "keep").read_text() == "k"
    remove_tree(tmp_path / "t")  # missing: not an error
    (tmp_path / "file").write_text("x")
    remove_tree(tmp_path / "file")
    assert not (tmp_path / "file").exists()


def test_remove_tree_relative_to_a_directory_descriptor(tmp_path, shallow_stack):
    deep_tree(tmp_path / "t")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree("t", dir_fd=fd)
    finally:
        os.close(fd)
    assert os.listdir(tmp_path) == []


def test_walk_files_and_tree_size(tmp_path, shallow_stack):
    deep_tree(tmp_path / "t", leaf=b"12345")
    walked = list(walk_files(tmp_path / "t"))
    assert len(walked) == DEPTH + 1 and walked[0] == (str(tmp_path / "t"), [])
    assert all(files == ["f"] for _, files in walked[1:])
    assert archive.tree_size(tmp_path / "t") == 5 * DEPTH


def test_iterate_sends_results_back(shallow_stack):
    def depth(n):
        if n == 0:
            return 0
        return 1 + (yield depth(n - 1))

    assert iterate(depth(5000)) == 5000


def test_tree_changes_of_a_deep_tree(tmp_path, shallow_stack):
    old, new = tmp_path / "old", tmp_path / "new"
    deep_tree(old, depth=3)
    rel = deep_tree(new)
    changes = archive.tree_changes(old, new)
    assert [c.kind for c in changes[:3]] == ["C", "C", "C"]  # /d, /d/d, /d/d/d: changed inside
    assert len(changes) == 2 * DEPTH and sum(c.kind == "A" for c in changes) >= 2 * DEPTH - 6
    assert Change("A", f"/{rel}/f") in changes


def test_overlay_changes_and_export_of_a_deep_upper(tmp_path, shallow_stack):
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    lower.mkdir()
    rel = deep_tree(upper)
    assert len(archive.overlay_changes(upper, [lower])) == 2 * DEPTH
    entries, opaque = archive.overlay_upper_entries(upper)
    assert len(entries) == 2 * DEPTH and not opaque
    out = io.BytesIO()
    archive.write_layer(upper, entries, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert f"{rel}/f" in tar.getnames()
