"""A directory deeper than Python's recursion limit in a container's layer
and in an image (issue #11): diff, commit, rm and rmi work, and leave the
storage driver's directory clean. (tests/unit/test_deep_trees.py covers each
walk with a lowered recursion limit.)"""

from __future__ import annotations

DEPTH = 1100  # past the default recursion limit (1000), under PATH_MAX
PATH = "/x/" + "/".join(["d"] * DEPTH)


def make_deep(berth) -> list[str]:
    berth.image
    before = sorted(p.name for p in (berth.root / (berth.storage_driver or "overlay2")).iterdir())
    berth("run", "--name", "deep", "--network", "none", berth.image, "sh", "-c", f"mkdir -p {PATH} && echo hi > {PATH}/f",
          check=True, timeout=120)
    return before


def test_a_deep_tree_is_diffed_committed_and_removed(berth):
    """Before: RecursionError on rm and rmi, and every later rmi or prune of that root failed."""
    before = make_deep(berth)
    diff = berth("diff", "deep", check=True, timeout=120).stdout.splitlines()
    assert f"A {PATH}/f" in diff and len(diff) >= DEPTH
    berth("commit", "deep", "deep:1", check=True, timeout=120)
    proc = berth("rm", "deep", timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = berth("rmi", "deep:1", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (berth.root / "overlay2").iterdir()) == before
    assert berth("image", "prune", "-af", timeout=120).returncode == 0
