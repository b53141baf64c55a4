import tomllib
from pathlib import Path

import pytest

from berth.core import config
from berth.core.errors import InvalidArgument

REPO = Path(__file__).resolve().parents[2]


def test_shipped_file_equals_builtin_defaults():
    with open(REPO / "config" / "berth.toml", "rb") as f:
        assert tomllib.load(f) == config.DEFAULTS


def test_layers_later_wins(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "system.toml")
    (tmp_path / "system.toml").write_text('[storage]\ndriver = "vfs"\n[network]\nbridge = "sys0"\n')
    (tmp_path / "user.toml").write_text('[network]\nbridge = "user0"\n')
    cfg = config.load({"engine": {"root": "/x"}}, env={"BERTH_CONFIG": str(tmp_path / "user.toml")})
    assert cfg.get("storage.driver") == "vfs"
    assert cfg.get("network.bridge") == "user0"
    assert cfg.root == Path("/x")
    assert cfg.get("engine.runroot") == "/run/berth"


def test_flags_beat_files(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    (tmp_path / "user.toml").write_text('[storage]\ndriver = "vfs"\n')
    cfg = config.load({"storage": {"driver": "btrfs"}}, env={"BERTH_CONFIG": str(tmp_path / "user.toml")})
    assert cfg.get("storage.driver") == "btrfs"


def test_unknown_key_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text('[storage]\ndrvier = "vfs"\n')
    with pytest.raises(InvalidArgument, match="unknown configuration key 'drvier'"):
        config.load(env={"BERTH_CONFIG": str(tmp_path / "bad.toml")})


def test_broken_toml(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[storage\n")
    with pytest.raises(InvalidArgument, match="invalid TOML"):
        config.load(env={"BERTH_CONFIG": str(tmp_path / "bad.toml")})
