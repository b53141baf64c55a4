"""resolve_in_root: container paths never resolve outside the root."""

import os

import pytest

from berth.core.runtime.paths import make_inside, resolve_in_root


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr/lib").mkdir(parents=True)
    return r


def test_plain_path(root):
    assert resolve_in_root(str(root), "/etc/passwd") == f"{root}/etc/passwd"


def test_dotdot_stops_at_root(root):
    assert resolve_in_root(str(root), "/../../../etc") == f"{root}/etc"
    assert resolve_in_root(str(root), "a/../../b") == f"{root}/b"


def test_absolute_symlink_is_rooted(root, tmp_path):
    os.symlink(str(tmp_path), root / "escape")
    assert resolve_in_root(str(root), "/escape/x") == f"{root}{tmp_path}/x"


def test_relative_symlink_climbing_out_is_clamped(root):
    os.symlink("../../../../../../", root / "up")
    assert resolve_in_root(str(root), "/up/etc") == f"{root}/etc"


def test_chained_symlinks(root):
    os.symlink("/usr/lib", root / "lib")
    os.symlink("lib/../etc", root / "conf")
    assert resolve_in_root(str(root), "/conf") == f"{root}/usr/etc"


def test_symlink_loop(root):
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    with pytest.raises(OSError) as info:
        resolve_in_root(str(root), "/a")
    assert info.value.errno == 40  # ELOOP


def test_make_inside_creates_dirs_and_files_inside(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "data")
    made = make_inside(str(root), "/data/sub/dir")
    assert made == f"{root}{outside}/sub/dir" and os.path.isdir(made)
    assert os.listdir(outside) == []
    f = make_inside(str(root), "/etc/hosts", is_dir=False)
    assert os.path.isfile(f)
