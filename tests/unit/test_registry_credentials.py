"""berth.core.oci.credentials (Docker's config.json) and the registry driver's host policy."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from berth.core.errors import Corrupt
from berth.core.oci import credentials
from berth.plugins.registry.auth import TokenCache, parse_challenges, token_url
from berth.plugins.registry.distribution import is_insecure, registry_url


def test_store_load_remove_round_trip(tmp_path):
    path = tmp_path / "cfg" / "auth.json"
    assert credentials.load("127.0.0.1:5000", path) is None
    credentials.store("127.0.0.1:5000", "me", "pa:ss", path)
    assert credentials.load("127.0.0.1:5000", path) == ("me", "pa:ss")
    user, password = credentials.load("http://127.0.0.1:5000/v2/", path)  # a URL names the same server
    assert (user, password) == ("me", "pa:ss")
    assert credentials.remove("127.0.0.1:5000", path) is True
    assert credentials.remove("127.0.0.1:5000", path) is False
    assert credentials.load("127.0.0.1:5000", path) is None


def test_file_is_dockers_format_with_private_modes(tmp_path):
    path = tmp_path / "cfg" / "auth.json"
    credentials.store("docker.io", "me", "secret", path)
    data = json.loads(path.read_text())
    assert data == {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"me:secret").decode()}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["docker.io", "index.docker.io", "registry-1.docker.io",
                                  "https://index.docker.io/v1/"])
def test_docker_hub_names_share_one_key(tmp_path, name):
    path = tmp_path / "auth.json"
    credentials.store("docker.io", "me", "secret", path)
    assert credentials.load(name, path) == ("me", "secret")


def test_other_keys_are_kept_and_foreign_url_keys_found(tmp_path):
    path = tmp_path / "auth.json"
    token = base64.b64encode(b"u:p").decode()
    path.write_text(json.dumps({"auths": {"https://reg.example:5000/v2/": {"auth": token}},
                                "credsStore": "desktop"}))
    assert credentials.load("reg.example:5000", path) == ("u", "p")
    credentials.store("other.example", "a", "b", path)
    data = json.loads(path.read_text())
    assert data["credsStore"] == "desktop"
    assert set(data["auths"]) == {"https://reg.example:5000/v2/", "other.example"}
    credentials.store("reg.example:5000", "u2", "p2", path)  # replaces the URL-keyed entry
    assert json.loads(path.read_text())["auths"].keys() == {"other.example", "reg.example:5000"}


def test_env_variable_picks_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_AUTH_FILE", str(tmp_path / "env-auth.json"))
    credentials.store("127.0.0.1:1", "x", "y")
    assert (tmp_path / "env-auth.json").exists()
    assert credentials.load("127.0.0.1:1") == ("x", "y")


def test_credentials_never_show_the_password(tmp_path):
    path = tmp_path / "auth.json"
    credentials.store("r.example", "me", "hunter2-secret", path)
    found = credentials.load("r.example", path)
    assert "hunter2-secret" not in repr(found) and "hunter2-secret" not in str(found)
    assert "hunter2-secret" not in f"{found}" and "me" in repr(found)


def test_broken_file_is_one_clear_error_without_content(tmp_path):
    path = tmp_path / "auth.json"
    path.write_text('{"auths": {"r": {"auth": "secret-but-not-base64!"}}')
    with pytest.raises(Corrupt, match="not JSON"):
        credentials.load("r", path)
    path.write_text('{"auths": {"r": {"auth": "!!!"}}}')
    with pytest.raises(Corrupt) as info:
        credentials.load("r", path)
    assert "!!!" not in str(info.value)
    os.unlink(path)


# host policy ---------------------------------------------------------------


@pytest.mark.parametrize("location,expected", [
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("127.8.9.10", "http://127.8.9.10"),
    ("localhost:5000", "http://localhost:5000"),
    ("docker.io", "https://registry-1.docker.io"),
    ("quay.io", "https://quay.io"),
    ("10.0.0.1:5000", "https://10.0.0.1:5000"),
    ("https://127.0.0.1:5000", "https://127.0.0.1:5000"),
    ("http://mirror.example", "http://mirror.example"),
])
def test_registry_url(location, expected):
    assert registry_url(location, ["127.0.0.0/8"]) == expected


def test_insecure_list_entries():
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"])
    assert is_insecure("reg.lan:5000", ["reg.lan"])
    assert is_insecure("reg.lan:5000", ["reg.lan:5000"])
    assert not is_insecure("reg.lan:5001", ["reg.lan:5000"])
    assert not is_insecure("192.168.1.1", ["127.0.0.0/8", "not-a-cidr/x"])
    assert is_insecure("[::1]:5000", ["::1/128"])


# auth parsing ----------------------------------------------------------------


def test_challenges_and_token_url():
    (c,) = parse_challenges('Bearer realm="https://auth.example/token",service="reg",'
                            'scope="repository:a/b:pull,push"')
    assert (c.scheme, c.realm, c.params["scope"]) == ("bearer", "https://auth.example/token",
                                                      "repository:a/b:pull,push")
    url = token_url(c.realm, c.params["service"], ["repository:a/b:pull,push", "repository:c:pull"])
    assert url == ("https://auth.example/token?service=reg&scope=repository%3Aa%2Fb%3Apull%2Cpush"
                   "&scope=repository%3Ac%3Apull")
    assert [x.scheme for x in parse_challenges('Basic realm="r", Bearer realm="t"')] == ["basic", "bearer"]


def test_token_cache_expires():
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put(("r", "s", ("x",)), "sEcReT-jwt", 60)
    assert cache.get(("r", "s", ("x",))) == "sEcReT-jwt"
    assert "sEcReT" not in repr(cache)
    now[0] += 55
    assert cache.get(("r", "s", ("x",))) is None  # dropped before it expires
