"""--init: which of the host's inits berth binds in (berth.core.runtime.init)."""

import shutil

import pytest

from berth.core.runtime import init
from berth.core.runtime.errors import StartError


def test_a_static_init_is_preferred(tmp_path, monkeypatch):
    dynamic = shutil.which("python3")  # certainly dynamically linked
    (tmp_path / "tini").symlink_to(dynamic)
    monkeypatch.setattr(init, "_DIRECTORIES", (str(tmp_path),))
    assert not init.is_static(dynamic)
    assert init.find() == dynamic  # the only one there
    static = shutil.which("tini-static") or shutil.which("catatonit") or shutil.which("docker-init")
    assert static and init.is_static(static), "the tests need Debian's tini (tini-static) or catatonit"
    (tmp_path / "catatonit").symlink_to(static)
    assert init.find() == str(tmp_path.joinpath("catatonit").resolve())


def test_no_init_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(init, "_DIRECTORIES", (str(tmp_path),))
    with pytest.raises(StartError) as info:
        init.find()
    assert "install tini" in info.value.message and info.value.exit_code == 125
