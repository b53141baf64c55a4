"""--user resolution against the container's passwd and group files."""

import os

import pytest

from berth.core.runtime.errors import StartError
from berth.core.runtime.users import resolve_user


@pytest.fixture
def files(tmp_path):
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\n")
    group.write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:root\n")
    return str(passwd), str(group)


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, [0, 10], "/root")),
    ("app", (1000, 1000, [1000, 50], "/home/app")),
    ("1000", (1000, 1000, [1000, 50], "/home/app")),
    ("app:staff", (1000, 50, [50], "/home/app")),
    ("4242", (4242, 0, [0], "/")),
    ("4242:7", (4242, 7, [7], "/")),
])
def test_resolve(files, user, expected):
    assert resolve_user(user, *files) == expected


def test_unknown_user_and_group(files):
    with pytest.raises(StartError, match="unable to find user ghost: no matching entries in passwd file"):
        resolve_user("ghost", *files)
    with pytest.raises(StartError, match="unable to find group nope: no matching entries in group file"):
        resolve_user("app:nope", *files)


def test_non_regular_passwd_is_ignored(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # would block a naive reader forever
    assert resolve_user("0", str(fifo), str(fifo)) == (0, 0, [0], "/")
