"""berth.core.plumbing.cache: records in the caller's own ~/.cache/berth."""

import os

from berth.core.plumbing import cache


def test_a_record_round_trips_privately(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "DIRECTORY", str(tmp_path / "berth"))
    assert cache.load("x.json") == {}
    cache.save("x.json", {"a": [1, 2]})
    assert cache.load("x.json") == {"a": [1, 2]}
    assert os.stat(tmp_path / "berth").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "berth" / "x.json").st_mode & 0o777 == 0o600


def test_a_record_others_can_write_is_not_trusted(tmp_path, monkeypatch):
    """Say `sudo -E` kept the user's HOME: root must not act on what the user could forge."""
    monkeypatch.setattr(cache, "DIRECTORY", str(tmp_path / "berth"))
    cache.save("x.json", {"a": 1})
    os.chmod(tmp_path / "berth" / "x.json", 0o666)
    assert cache.load("x.json") == {}
    os.chmod(tmp_path / "berth" / "x.json", 0o600)
    os.chmod(tmp_path / "berth", 0o777)
    assert cache.load("x.json") == {}
    cache.save("x.json", {"a": 2})  # nor written there
    os.chmod(tmp_path / "berth", 0o700)
    assert cache.load("x.json") == {"a": 1}


def test_what_is_not_json_is_not_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "DIRECTORY", str(tmp_path / "berth"))
    import datetime

    cache.save("x.json", {"when": datetime.datetime(2026, 1, 1)})  # a TOML datetime
    assert cache.load("x.json") == {} and os.listdir(tmp_path / "berth") == []


def test_the_records_live_under_xdg_cache_home(tmp_path):
    """berth's own records follow $XDG_CACHE_HOME (issue #11); a relative one is ignored."""
    import subprocess
    import sys

    config = tmp_path / "berth.toml"
    config.write_text('[network]\nsubnet = "10.1.0.0/16"\n')
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"),
               BERTH_CONFIG=str(config))
    code = "from berth.core import config, plugins; config.load(); print(plugins.__name__)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert (tmp_path / "xdg" / "berth" / "config.json").is_file()
    assert not (tmp_path / "home" / ".cache").exists()
    env["XDG_CACHE_HOME"] = "relative/dir"
    out = subprocess.run([sys.executable, "-c", "from berth.core.plumbing import cache; print(cache.DIRECTORY)"],
                         env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert out == str(tmp_path / "home" / ".cache" / "berth")
