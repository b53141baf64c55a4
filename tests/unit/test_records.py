"""berth.core.plumbing.records: the dataclass stand-in of the start path."""

import pytest

from berth.core.plumbing.records import Record
from berth.core.runtime.cgroups import Limits
from berth.core.runtime.spec import ContainerSpec, Mount


class Point(Record):
    REQUIRED = ("x",)
    FIELDS = {"y": 0, "tags": []}


def test_keywords_defaults_and_fresh_mutable_defaults():
    a, b = Point(x=1), Point(x=2, y=3)
    assert (a.x, a.y, b.y) == (1, 0, 3)
    a.tags.append("t")
    assert Point(x=1).tags == [] and a.tags == ["t"]


def test_missing_and_unknown_fields_are_refused():
    with pytest.raises(TypeError, match="missing \\['x'\\]"):
        Point(y=1)
    with pytest.raises(TypeError, match="unknown \\['z'\\]"):
        Point(x=1, z=2)


def test_equality_and_repr_like_a_dataclass():
    assert Point(x=1) == Point(x=1) and Point(x=1) != Point(x=2)
    assert repr(Point(x=1)) == "Point(x=1, y=0, tags=[])"
    with pytest.raises(TypeError):
        hash(Point(x=1))


def test_a_container_spec_inherits_and_gets_its_own_limits():
    spec = ContainerSpec(args=["true"], rootfs="/r", mounts=[Mount(destination="/d")])
    assert spec.cwd == "/" and spec.seccomp is True and spec.mounts[0].type == "bind"
    assert spec.limits == Limits() and spec.limits is not ContainerSpec(args=["x"], rootfs="/r").limits
