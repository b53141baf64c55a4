"""Small JSON records of what is slow to work out and seldom changes (the
installed plugins, a parsed configuration file), kept in the caller's own
$XDG_CACHE_HOME/berth, by default ~/.cache/berth (mode 0700: they name code
to run). Each user of a record says when it is stale; a missing, damaged or
unwritable record costs only the slow way."""

from __future__ import annotations

import json
import os


def _directory(env=os.environ) -> str:
    """$XDG_CACHE_HOME/berth, or ~/.cache/berth (a relative $XDG_CACHE_HOME is ignored, as the
    XDG base directory specification says)."""
    base = env.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "berth")


DIRECTORY = _directory()


def load(name: str) -> dict:
    try:
        with open(os.path.join(DIRECTORY, name)) as f:
            if not (_ours(os.stat(DIRECTORY)) and _ours(os.fstat(f.fileno()))):
                return {}  # say `sudo -E`: root must not trust what the user can write
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def save(name: str, record: dict) -> None:
    path = os.path.join(DIRECTORY, name)
    tmp = f"{path}.{os.getpid()}"
    try:
        os.makedirs(DIRECTORY, mode=0o700, exist_ok=True)
        if not _ours(os.stat(DIRECTORY)):
            return
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):  # read-only home, or not JSON (a TOML datetime)
        try:
            os.unlink(tmp)
        except OSError:
            pass
