"""Resolve a Docker `--user` value against the container's own files.

Called after pivot_root (or setns into the container's mount namespace), so
/etc/passwd and /etc/group are the container's and cannot lead outside.
Files are read defensively: non-blocking, regular files only, bounded size.
"""

import os
import stat

from berth.core.runtime.errors import StartError

_MAX_FILE = 4 * 1024 * 1024


def _read_db(path: str) -> list[list[str]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = os.read(fd, _MAX_FILE)
    except OSError:
        return []
    finally:
        os.close(fd)
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


MAX_ID = (1 << 31) - 1  # runc's (libcontainer/user) range


def _number(text: str) -> int:
    value = int(text)
    if value > MAX_ID:
        raise StartError(f"uids and gids must be in range 0-{MAX_ID}", "user")
    return value


def resolve_user(user: str, passwd: str = "/etc/passwd",
                 group: str = "/etc/group", group_add=()) -> tuple[int, int, list[int], str]:
    """Return (uid, gid, supplementary gids, home) for a `--user` value.

    Accepts "", "uid", "uid:gid", "name", "name:group", "uid:group",
    "name:gid". Unknown names raise StartError with Docker's message.
    group_add: --group-add names or gids, added to the supplementary groups.
    """
    name, _, grp = (user or "0").partition(":")
    users = _read_db(passwd)
    uid = gid = None
    home = "/"
    username = None
    for row in users:
        if len(row) < 7:
            continue
        if row[0] == name or (name.isdigit() and row[2] == name):
            try:
                uid, gid = int(row[2]), int(row[3])
            except ValueError:
                continue
            username, home = row[0], row[5] or "/"
            break
    if uid is None:
        if not name.isdigit():
            raise StartError(f"unable to find user {name}: no matching entries in passwd file",
                             "user")
        uid, gid = _number(name), 0
    groups_db = _read_db(group)
    if grp:
        if grp.isdigit():
            gid = _number(grp)
        else:
            for row in groups_db:
                if len(row) >= 3 and row[0] == grp:
                    gid = int(row[2])
                    break
            else:
                raise StartError(f"unable to find group {grp}: no matching entries in group file",
                                 "user")
    supplementary = []
    if username is not None and not grp:
        for row in groups_db:
            if len(row) >= 4 and username in row[3].split(","):
                try:
                    supplementary.append(int(row[2]))
                except ValueError:
                    pass
    if gid not in supplementary:
        supplementary.insert(0, gid)
    for extra in group_add:
        if extra.isdigit():
            number = _number(extra)
        else:
            number = next((int(row[2]) for row in groups_db if len(row) >= 3 and row[0] == extra
                           and row[2].isdigit()), None)
            if number is None:
                raise StartError(f"unable to find group {extra}: no matching entries in group file", "user")
        if number not in supplementary:
            supplementary.append(number)
    return uid, gid, supplementary, home
