"""The storage driver suite: what every StorageDriver must do.

Each case runs on a fresh home (on a loop-mounted filesystem of the type
the driver's ``home_filesystem`` names, if it names one) and checks what
a container would see through `mount`, plus what `changes`, `export_diff`
and `usage` report. A driver is built as ``cls(home, options)`` with the
``--berth-conformance-opt`` options. When a case fails, its report lists
the mounts and the tree of every home it used.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from berth.core import plugins
from berth.core.drivers import Change
from berth.core.errors import Conflict, Corrupt, NotFound
from berth.testing.support import mounts_under, unmount_all_under

MTIME = 1_500_000_000


# ---------------------------------------------------------------- building layers


def _info(name, type, mode, uid=0, gid=0, xattrs=None, mtime=MTIME):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = type, mode, uid, gid, mtime
    for key, value in (xattrs or {}).items():
        info.pax_headers["SCHILY.xattr." + key] = value
    return info


def file(name, data=b"", mode=0o644, **kw):
    info = _info(name, tarfile.REGTYPE, mode, **kw)
    info.size = len(data)
    return info, data


def directory(name, mode=0o755, **kw):
    return _info(name, tarfile.DIRTYPE, mode, **kw), None


def symlink(name, target):
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, None


def hardlink(name, target):
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def device(name, type, major, minor, mode=0o666):
    info = _info(name, type, mode)
    info.devmajor, info.devminor = major, minor
    return info, None


def whiteout(path):
    head, _, name = path.rpartition("/")
    return file(f"{head}/.wh.{name}" if head else f".wh.{name}")


def opaque(dirpath):
    return file(f"{dirpath}/.wh..wh..opq")


def layer(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def image(driver, *layers, prefix="L") -> str:
    """Import `layers` (lists of entries) as a chain; return the top layer's id."""
    parent = None
    for i, entries in enumerate(layers):
        id = f"{prefix}{i}"
        driver.create(id, parent)
        driver.apply_diff(id, layer(*entries))
        parent = id
    return parent


def container(driver, parent, id="C") -> Path:
    driver.create_rw(id, parent)
    return driver.mount(id)


def listing(root: Path) -> list:
    """Everything a container sees under root, except directory times."""
    rows = []
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        if stat.S_ISREG(st.st_mode):
            extra = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(path)
        else:
            extra = None
        xattrs = [] if path.is_symlink() else sorted((k, os.getxattr(path, k)) for k in os.listxattr(path))
        mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
        rows.append((rel, stat.filemode(st.st_mode), st.st_uid, st.st_gid, st.st_rdev, mtime, extra, xattrs))
    return rows


BASE = [
    directory("etc"), file("etc/conf", b"v1"), file("etc/old", b"o"),
    directory("d"), file("d/a", b"a"), file("d/b", b"b"), file("mode", b"m"),
    directory("var"), file("var/x", b"x"),
]


def _mutate(root: Path) -> None:
    (root / "etc/conf").write_bytes(b"v2")
    (root / "etc/old").unlink()
    for name in ("a", "b"):  # replace a whole directory: overlayfs makes it opaque
        (root / "d" / name).unlink()
    (root / "d").rmdir()
    (root / "d").mkdir()
    (root / "d/c").write_bytes(b"c")
    os.chmod(root / "mode", 0o4711)
    os.chown(root / "mode", 1000, 1000)
    os.chmod(root / "mode", 0o4711)
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"tool")
    os.link(root / "bin/tool", root / "bin/alias")
    (root / "bin/link").symlink_to("tool")
    os.setxattr(root / "bin/tool", "user.k", b"v")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))


class StorageSuite:
    KIND = "storage"
    DRIVERS: list[str] | None = None

    @pytest.fixture
    def make_driver(self, request, tmp_path, driver_name, driver_options, loop_filesystem):
        """make_driver() -> a new driver instance of the case's kind on a fresh home."""
        cls = plugins.drivers("storage").supported(driver_name)
        fstype = cls.home_filesystem
        made = []
        request.node.berth_homes = []

        def make():
            base = loop_filesystem(fstype) if fstype else tmp_path
            home = base / f"home-{secrets.token_hex(4)}"
            driver = cls(home, dict(driver_options))
            made.append(driver)
            request.node.berth_homes.append(home)
            return driver

        yield make
        for driver in made:
            driver.cleanup()
            unmount_all_under(driver.home)
            shutil.rmtree(driver.home, ignore_errors=True)

    @pytest.fixture
    def driver(self, make_driver):
        return make_driver()

    def test_whiteouts_and_opaque_directories(self, driver):
        top = image(
            driver,
            [directory("a"), file("a/x", b"x"), file("a/y", b"y"), directory("b"), file("b/z", b"z"),
             directory("b/sub"), file("b/sub/w", b"w"), file("keep", b"k")],
            [directory("a"), whiteout("a/x"), directory("b"), opaque("b"), file("b/new", b"n"), whiteout("keep")],
        )
        root = container(driver, top)
        assert sorted(os.listdir(root / "a")) == ["y"]
        assert sorted(os.listdir(root / "b")) == ["new"]
        assert not os.path.lexists(root / "keep")
        assert driver.changes("L1") == [
            Change("C", "/a"),
            Change("D", "/a/x"),
            Change("C", "/b"),
            Change("A", "/b/new"),
            Change("D", "/b/sub"),
            Change("D", "/b/z"),
            Change("D", "/keep"),
        ]

    def test_hard_links(self, driver):
        top = image(driver, [directory("bin"), file("bin/a", b"prog", mode=0o755), hardlink("bin/b", "bin/a"),
                             hardlink("bin/c", "/bin/a")])
        root = container(driver, top)
        inodes = {os.lstat(root / f"bin/{n}").st_ino for n in "abc"}
        assert len(inodes) == 1
        assert os.lstat(root / "bin/a").st_nlink == 3
        assert (root / "bin/c").read_bytes() == b"prog"

    def test_symlinks(self, driver):
        top = image(
            driver,
            [file("f", b"data"), symlink("abs", "/etc/passwd"), symlink("rel", "f"), symlink("dangling", "nowhere"),
             directory("d"), file("d/x", b"x")],
            [symlink("d", "f")],  # a directory replaced by a symlink
        )
        root = container(driver, top)
        assert os.readlink(root / "abs") == "/etc/passwd"
        assert (root / "rel").read_bytes() == b"data"
        assert os.readlink(root / "dangling") == "nowhere"
        assert os.readlink(root / "d") == "f"

    def test_device_nodes(self, driver):
        top = image(driver, [directory("dev"), device("dev/null", tarfile.CHRTYPE, 1, 3),
                             device("dev/loop9", tarfile.BLKTYPE, 7, 9, mode=0o660), device("fifo", tarfile.FIFOTYPE, 0, 0)])
        root = container(driver, top)
        null = os.lstat(root / "dev/null")
        assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
        assert stat.S_IMODE(null.st_mode) == 0o666
        loop = os.lstat(root / "dev/loop9")
        assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
        assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)

    def test_xattrs(self, driver):
        top = image(driver, [directory("d", xattrs={"user.dir": "D"}),
                             file("d/f", b"f", xattrs={"user.note": "hello", "trusted.berth": "t"})])
        root = container(driver, top)
        assert os.getxattr(root / "d/f", "user.note") == b"hello"
        assert os.getxattr(root / "d/f", "trusted.berth") == b"t"
        assert os.getxattr(root / "d", "user.dir") == b"D"

    def test_owners_modes_and_times(self, driver):
        top = image(driver, [
            directory("home", mode=0o711, uid=3, gid=4),
            file("home/su", b"su", mode=0o4755, uid=1000, gid=2000),
            file("home/secret", b"s", mode=0o600, uid=1000, gid=1000),
            directory("tmp", mode=0o1777),
        ])
        root = container(driver, top)
        home = os.lstat(root / "home")
        assert (stat.S_IMODE(home.st_mode), home.st_uid, home.st_gid) == (0o711, 3, 4)
        su = os.lstat(root / "home/su")
        assert (stat.S_IMODE(su.st_mode), su.st_uid, su.st_gid, su.st_mtime) == (0o4755, 1000, 2000, MTIME)
        assert stat.S_IMODE(os.lstat(root / "home/secret").st_mode) == 0o600
        assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777

    def test_ten_stacked_layers(self, driver):
        layers = []
        for i in range(10):
            entries = [file(f"f{i}", str(i).encode()), file("counter", str(i).encode())]
            if i >= 2:
                entries.append(whiteout(f"f{i - 2}"))
            layers.append(entries)
        root = container(driver, image(driver, *layers))
        assert (root / "counter").read_text() == "9"
        assert sorted(os.listdir(root)) == ["counter", "f8", "f9"]

    def test_many_stacked_layers_mount(self, driver):
        top = image(driver, *[[file(f"f{i:03}", b"x")] for i in range(64)])
        root = container(driver, top)
        assert len(os.listdir(root)) == 64

    def test_copy_on_write_two_containers_share_the_image(self, driver):
        top = image(driver, [directory("etc"), file("etc/data", b"orig")])
        one = container(driver, top, "C1")
        two = container(driver, top, "C2")
        (one / "etc/data").write_bytes(b"changed by one")
        (one / "etc/new").write_bytes(b"new")
        assert (one / "etc/data").read_bytes() == b"changed by one"
        assert (two / "etc/data").read_bytes() == b"orig"
        assert not (two / "etc/new").exists()
        assert (driver.mount(top) / "etc/data").read_bytes() == b"orig"
        driver.unmount(top)
        assert driver.changes("C2") == []
        assert driver.changes(top) == [Change("A", "/etc"), Change("A", "/etc/data")]

    def test_deleting_a_lower_file(self, driver):
        top = image(driver, [file("gone", b"g"), file("kept", b"k")])
        root = container(driver, top)
        (root / "gone").unlink()
        assert sorted(os.listdir(root)) == ["kept"]
        assert driver.changes("C") == [Change("D", "/gone")]
        other = container(driver, top, "C2")
        assert (other / "gone").read_bytes() == b"g"

    def test_changes_lists_added_changed_deleted(self, driver):
        top = image(driver, [directory("etc"), file("etc/conf", b"v1"), file("etc/old", b"o"), file("gone", b"g"),
                             file("same", b"s")])
        root = container(driver, top)
        (root / "etc/conf").write_bytes(b"v2, longer")
        (root / "etc/old").unlink()
        (root / "gone").unlink()
        (root / "new/sub").mkdir(parents=True)
        (root / "new/sub/f").write_bytes(b"f")
        assert driver.changes("C") == [
            Change("C", "/etc"),
            Change("C", "/etc/conf"),
            Change("D", "/etc/old"),
            Change("D", "/gone"),
            Change("A", "/new"),
            Change("A", "/new/sub"),
            Change("A", "/new/sub/f"),
        ]

    def test_export_round_trip(self, make_driver):
        first = make_driver()
        root = container(first, image(first, BASE))
        _mutate(root)
        exported = io.BytesIO()
        first.export_diff("C", exported)

        second = make_driver()
        base = image(second, BASE)
        second.create("X", base)
        second.apply_diff("X", io.BytesIO(exported.getvalue()))
        copy = container(second, "X", "R")
        assert listing(copy) == listing(root)

        again = io.BytesIO()
        first.export_diff("C", again)
        assert again.getvalue() == exported.getvalue(), "export is not deterministic"

    def test_mounts_nest(self, driver):
        top = image(driver, [file("f", b"x")], [file("g", b"y")])
        driver.create_rw("C", top)
        root = driver.mount("C")
        assert driver.mount("C") == root
        driver.unmount("C")
        assert (root / "f").read_bytes() == b"x"  # still mounted once
        driver.unmount("C")
        driver.unmount("C")  # unmounting an unmounted layer is not an error

    def test_remove_cleans_up_and_unmounts(self, driver):
        before = sorted(p.relative_to(driver.home) for p in driver.home.rglob("*"))
        top = image(driver, [file("f", b"x")], [file("g", b"y")])
        driver.create_rw("C", top)
        driver.mount("C")
        driver.mount("C")
        driver.mount(top)
        assert driver.exists("C")
        driver.remove("C")
        assert not driver.exists("C")
        driver.remove("C")  # missing is not an error
        driver.unmount(top)
        driver.remove(top)
        driver.remove("L0")
        assert mounts_under(driver.home) == []
        assert sorted(p.relative_to(driver.home) for p in driver.home.rglob("*")) == before

    def test_layer_ids_list_every_layer_made(self, driver):
        """berth system check compares these with its records; None: the driver cannot list them."""
        if driver.layer_ids() is None:
            pytest.skip(f"{driver.name} does not list its layers (layer_ids returns None)")
        top = image(driver, [file("f", b"x")], [file("g", b"y")])
        driver.create_rw("C", top)
        driver.create("half", top)  # created, never filled: what a killed pull leaves
        assert sorted(driver.layer_ids()) == sorted(["L0", "L1", "C", "half"])
        driver.remove("half")
        driver.remove("C")
        assert sorted(driver.layer_ids()) == ["L0", "L1"]

    def test_a_tree_deeper_than_the_python_stack_is_removed(self, driver):
        top = image(driver, [file("f", b"x")])
        root = container(driver, top)
        fd = os.open(root, os.O_RDONLY)
        try:
            for _ in range(sys.getrecursionlimit() + 100):
                os.mkdir("d", dir_fd=fd)
                deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = deeper
        finally:
            os.close(fd)
        assert len(driver.changes("C")) > sys.getrecursionlimit()
        driver.remove("C")
        assert not driver.exists("C")

    def test_usage(self, driver):
        top = image(driver, [file("small", b"s" * 100)])
        root = container(driver, top)
        (root / "big").write_bytes(b"b" * (1 << 20))
        assert (1 << 20) <= driver.usage("C") < (2 << 20)
        assert driver.usage(top) < (1 << 20)

    def test_create_errors(self, driver):
        image(driver, [file("f", b"x")])
        with pytest.raises(Conflict):
            driver.create("L0", None)
        with pytest.raises(NotFound):
            driver.create("X", "no-such-layer")
        assert not driver.exists("X")

    def test_hostile_layer_is_refused_and_layer_left_as_created(self, driver, tmp_path):
        top = image(driver, [file("f", b"x")])
        driver.create("X", top)
        with pytest.raises(Corrupt):
            driver.apply_diff("X", layer(file("ok", b"1"), file("../../../escape", b"pwned")))
        assert not any(p.name == "escape" for p in tmp_path.rglob("escape"))
        assert driver.exists("X")
        assert driver.changes("X") == []
        driver.create_rw("C", "X")
        assert sorted(os.listdir(driver.mount("C"))) == ["f"]

    def test_mount_count_is_shared_between_processes(self, driver, driver_name, driver_options):
        top = image(driver, [file("f", b"x")], [file("g", b"y")])
        driver.create_rw("C", top)
        other = (
            "import sys; from pathlib import Path; from berth.core import plugins\n"
            f"d = plugins.drivers('storage').get({driver_name!r})(Path({str(driver.home)!r}), {driver_options!r})\n"
            "print(d.mount('C'))\n"
        )
        out = subprocess.run([sys.executable, "-c", other], check=True, capture_output=True, text=True).stdout.strip()
        root = driver.mount("C")  # this process's mount joins the other's
        assert str(root) == out
        driver.unmount("C")
        assert (root / "g").read_bytes() == b"y", "unmounted while another process still had it mounted"
        driver.unmount("C")
