"""A busybox-static root filesystem as a tar: the image every test and benchmark runs."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    return [a for a in out.split() if a and a != "busybox"]


def make_rootfs_tar(path: Path, extra: dict[str, bytes] | None = None, config_files: bool = True) -> Path:
    """A minimal busybox root filesystem: /bin/busybox + applet links, /etc files."""
    with tarfile.open(path, "w") as tar:
        def add_dir(name, mode=0o755):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        def add_file(name, data: bytes, mode=0o644):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "tmp", "root", "home", "var", "usr", "usr/bin", "dev", "proc", "sys"):
            add_dir(d, 0o1777 if d == "tmp" else 0o755)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        add_file("bin/busybox", data, 0o755)
        for applet in busybox_applets():
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        if config_files:
            add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                                   b"app:x:1000:1000:app:/home/app:/bin/sh\n")
            add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\napp:x:1000:\n")
        for name, content in (extra or {}).items():
            add_file(name, content)
    return path


def tar_of(files: dict[str, bytes], mtime: int = 0) -> bytes:
    """An uncompressed tar of regular files, name -> content, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
