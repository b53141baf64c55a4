"""Image references as Docker counts them (issue #11): a pulled image's repo digest is
not a second reference that keeps it after `rmi` of its last tag, and `images
HOST:PORT/REPO` finds a registry with a port."""

from __future__ import annotations

import json


def pulled(berth, other, registry, name="team/bb:v1") -> str:
    ref = f"{registry.location}/{name}"
    berth("tag", berth.image, ref, check=True)
    berth("push", ref, check=True)
    other("pull", "-q", ref, check=True)
    return ref


def test_rmi_of_the_last_tag_deletes_a_pulled_image(berth, other, registry_open):
    ref = pulled(berth, other, registry_open)
    repo = ref.rsplit(":", 1)[0]
    image_id = other("inspect", "-f", "{{.Id}}", ref, check=True).stdout.strip()
    digest = json.loads(other("inspect", ref, check=True).stdout)[0]["RepoDigests"][0]
    assert other("images", "-q", repo, check=True).stdout.split() == [image_id.split(":")[1][:12]]
    assert other("images", "-q", ref, check=True).stdout.split() == [image_id.split(":")[1][:12]]
    assert other("images", "-q", f"{repo}:v2", check=True).stdout == ""
    out = other("rmi", ref, check=True).stdout.splitlines()
    assert out[:2] == [f"Untagged: {ref}", f"Untagged: {digest}"]
    assert f"Deleted: {image_id}" in out
    assert other("images", "-a", "-q", check=True).stdout == ""  # nothing left dangling


def test_rmi_of_a_tag_keeps_an_image_another_repository_names(berth, other, registry_open):
    ref = pulled(berth, other, registry_open, "team/kept:v1")
    other("tag", ref, "mine:1", check=True)
    out = other("rmi", ref, check=True).stdout.splitlines()
    assert len(out) == 2 and all(line.startswith("Untagged: ") for line in out), out
    info = json.loads(other("inspect", "mine:1", check=True).stdout)[0]
    assert (info["RepoTags"], info["RepoDigests"]) == (["mine:1"], [])
    # a digest reference goes alone while a tag of its repository remains
    ref2 = pulled(berth, other, registry_open, "team/kept:v2")
    digest = json.loads(other("inspect", ref2, check=True).stdout)[0]["RepoDigests"][0]
    assert other("rmi", digest, check=True).stdout.splitlines() == [f"Untagged: {digest}"]
    assert other("inspect", "-f", "{{.RepoTags}}", ref2, check=True).stdout.strip() == f"[{ref2} mine:1]"
