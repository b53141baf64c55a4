"""Credentials berth did not store itself: what `docker login` left in
~/.docker/config.json (auths, credsStore, credHelpers through the real
docker-credential-* protocol, here a small helper script on PATH), and
--authfile on login/pull/push. Against a real registry with htpasswd auth
on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from berth.testing.registries import PASSWORD, USER  # (fixtures: the kit's plugin)

HELPER = """#!/bin/sh
# docker-credential-{name}: the credential-helper protocol, with one secret
[ "$1" = get ] || exit 1
read -r server
echo "$server" >> {log}
if [ "$server" = "{server}" ]; then
    printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}\\n' "$server"
    exit 0
fi
echo "credentials not found in native keychain"
exit 1
"""


@pytest.fixture
def pushed(berth, registry_htpasswd, tmp_path):
    """An image pushed to the htpasswd registry (logged in through --authfile), then removed here."""
    loc = registry_htpasswd.location
    authfile = tmp_path / "login.json"
    res = berth("login", "--authfile", str(authfile), "-u", USER, "--password-stdin", loc, input=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert loc in json.loads(authfile.read_text())["auths"]
    assert not (berth.root.parent / "auth.json").exists()  # berth's own file untouched
    name = f"{loc}/creds/busybox:1"
    berth("tag", berth.image, name, check=True)
    assert berth("push", name).returncode == 1  # berth's own file holds nothing
    berth("push", "--authfile", str(authfile), name, check=True)
    berth("rmi", name, check=True)
    return name


def docker_config(berth, tmp_path, data: dict) -> None:
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(data))
    berth.env["DOCKER_CONFIG"] = str(directory)


def helper(berth, tmp_path, name: str, server: str, user: str = USER, password: str = PASSWORD):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    script = bindir / f"docker-credential-{name}"
    script.write_text(HELPER.format(name=name, log=log, server=server, user=user, password=password))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    berth.env["PATH"] = f"{bindir}:{os.environ['PATH']}"
    return log


def test_authfile_on_login_push_pull(berth, pushed, tmp_path):
    denied = berth("pull", pushed)
    assert denied.returncode == 1 and "unauthorized" in denied.stderr.lower()
    assert berth("pull", "--authfile", str(tmp_path / "login.json"), pushed).returncode == 0
    missing = berth("pull", "--authfile", str(tmp_path / "none.json"), pushed)
    assert missing.returncode == 1 and "unauthorized" in missing.stderr.lower()
    location = pushed.split("/", 1)[0]
    out = berth("logout", "--authfile", str(tmp_path / "login.json"), location, check=True).stdout
    assert out == f"Removing login credentials for {location}\n"
    assert json.loads((tmp_path / "login.json").read_text())["auths"] == {}


def test_auths_of_docker_config(berth, pushed, registry_htpasswd, tmp_path):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    docker_config(berth, tmp_path, {"auths": {registry_htpasswd.location: {"auth": token}}})
    res = berth("pull", pushed)
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr


def test_creds_store_helper(berth, pushed, registry_htpasswd, tmp_path):
    loc = registry_htpasswd.location
    log = helper(berth, tmp_path, "fake", loc)
    docker_config(berth, tmp_path, {"auths": {loc: {}}, "credsStore": "fake"})
    res = berth("pull", pushed)
    assert res.returncode == 0, res.stderr
    assert loc in log.read_text().split()
    # a wrong secret in the helper: the registry refuses, the secret is not shown
    helper(berth, tmp_path, "fake", loc, password="not-the-password")
    berth("rmi", pushed, check=True)
    res = berth("pull", pushed)
    assert res.returncode == 1 and "unauthorized" in res.stderr.lower() and "not-the-password" not in res.stderr


def test_cred_helpers_per_registry(berth, pushed, registry_htpasswd, tmp_path):
    loc = registry_htpasswd.location
    log = helper(berth, tmp_path, "perhost", loc)
    # the per-registry helper wins over credsStore (which is not even installed)
    docker_config(berth, tmp_path, {"credsStore": "absent", "credHelpers": {loc: "perhost"}})
    res = berth("pull", pushed)
    assert res.returncode == 0, res.stderr
    assert log.read_text().split() == [loc]


def test_a_missing_helper_is_docker_s_error(berth, pushed, registry_htpasswd, tmp_path):
    docker_config(berth, tmp_path, {"credsStore": "absent"})
    res = berth("pull", pushed)
    assert res.returncode == 1
    assert 'error getting credentials - err: exec: "docker-credential-absent": executable file not found in $PATH' \
        in res.stderr


def test_berth_login_wins_over_docker_config(berth, pushed, registry_htpasswd, tmp_path):
    loc = registry_htpasswd.location
    log = helper(berth, tmp_path, "fake", loc, password="stale")
    docker_config(berth, tmp_path, {"credsStore": "fake"})
    berth("login", "-u", USER, "--password-stdin", loc, input=PASSWORD + "\n", check=True)
    res = berth("pull", pushed)
    assert res.returncode == 0, res.stderr
    assert not log.exists()  # berth's own file answered first
