"""Replace a small file in one step, so a concurrent reader sees the old
text or the new one, never an empty or half-written file."""

from __future__ import annotations

import os


def write_text(path: os.PathLike | str, text: str, mode: int | None = None) -> None:
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
