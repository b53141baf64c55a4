import tomllib
from pathlib import Path

import pytest

from berth.core import config
from berth.core.errors import InvalidArgument
from berth.core.plumbing import cache

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


def test_a_file_is_parsed_once_per_version_and_a_change_is_read(tmp_path, monkeypatch):
    """Parsed tables are kept in a record (berth.core.plumbing.cache); an edited file
    is parsed again, and a file that became invalid is refused again."""
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    path = tmp_path / "user.toml"
    env = {"BERTH_CONFIG": str(path)}
    path.write_text('[storage]\ndriver = "vfs"\n')
    assert config.load(env=env).get("storage.driver") == "vfs"
    parses = []
    real = tomllib.load
    monkeypatch.setattr(tomllib, "load", lambda f: parses.append(1) or real(f))
    assert config.load(env=env).get("storage.driver") == "vfs"
    assert parses == []  # from the record
    path.write_text('[storage]\ndriver = "btrfs"\n')
    assert config.load(env=env).get("storage.driver") == "btrfs"
    assert parses == [1]
    path.write_text("[storage\n")
    with pytest.raises(InvalidArgument, match="invalid TOML"):
        config.load(env=env)


def test_the_record_keeps_only_the_files_used_last(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "none.toml")
    for i in range(config._RECORD_FILES + 5):
        path = tmp_path / f"c{i}.toml"
        path.write_text(f'[network]\nbridge = "bt{i}"\n')
        assert config.load(env={"BERTH_CONFIG": str(path)}).get("network.bridge") == f"bt{i}"
    kept = cache.load(config._RECORD)
    assert len(kept) == config._RECORD_FILES and str(tmp_path / "c0.toml") not in kept
