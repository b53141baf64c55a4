"""Layer extraction against hostile tarballs, checked by looking at the host.

Each test extracts into `dest`, next to a sentinel `victim` directory; the
`victim` fixture fails the test if anything in it changed (content, mode,
owner, times, link count) or if anything appeared next to dest.
Runs as root (owners and device nodes), as CI does.
"""

from __future__ import annotations

import gc
import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.core.drivers import Change
from berth.core.errors import Corrupt
from berth.core.oci import archive


def entry(name, type=tarfile.REGTYPE, data=b"", *, linkname="", mode=0o644, uid=0, gid=0, mtime=1_600_000_000,
          devmajor=0, devminor=0, xattrs=None):
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if type == tarfile.REGTYPE else 0
    for key, value in (xattrs or {}).items():
        info.pax_headers["SCHILY.xattr." + key] = value
    return info, data


def make_tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def snapshot(root: Path) -> dict:
    out = {}
    for path in sorted([root, *root.rglob("*")]):
        st = os.lstat(path)
        content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        out[str(path)] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, content)
    return out


@pytest.fixture
def dest(tmp_path):
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture(autouse=True)
def victim(tmp_path, dest):
    """A sentinel directory beside dest that no extraction may touch."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "secret").write_text("do not touch")
    os.chmod(v / "secret", 0o600)
    before = snapshot(v)
    gc.collect()  # earlier tests' garbage (sockets, files) must not close mid-count
    fds_before = len(os.listdir("/proc/self/fd"))
    yield v
    assert snapshot(v) == before, "the victim directory outside dest was modified"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "victim"], "something landed beside dest"
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == fds_before, "extraction leaked a file descriptor"


def extract(data: bytes, dest: Path, whiteouts="overlay", **kw) -> int:
    return archive.extract_layer(io.BytesIO(data), dest, whiteouts, **kw)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["../x", "a/../../x", "./../x", "../victim/secret"])
def test_names_that_climb_out_are_refused(dest, name):
    with pytest.raises(Corrupt, match="outside the layer"):
        extract(make_tar(entry(name, data=b"pwned")), dest)


def test_absolute_names_are_made_relative(dest):
    extract(make_tar(entry("/abs/file", data=b"hi"), entry("a/../b", data=b"b")), dest)
    assert (dest / "abs/file").read_bytes() == b"hi"
    assert (dest / "b").read_bytes() == b"b"


def test_empty_name_is_ignored_and_root_entry_sets_root_mode(dest):
    extract(make_tar(entry("", data=b"x"), entry("./", tarfile.DIRTYPE, mode=0o750)), dest)
    assert os.listdir(dest) == []
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750


# ---------------------------------------------------------------- symlinks


@pytest.mark.parametrize("target", ["ABS", "../victim", "/etc"])
def test_file_written_through_a_symlink_is_refused(dest, victim, target):
    link = str(victim) if target == "ABS" else target
    data = make_tar(entry("evil", tarfile.SYMTYPE, linkname=link), entry("evil/secret", data=b"pwned"))
    with pytest.raises(Corrupt, match="is a symlink"):
        extract(data, dest)
    assert os.readlink(dest / "evil") == link


def test_directory_replaced_by_symlink_then_written_through(dest, victim):
    data = make_tar(
        entry("d", tarfile.DIRTYPE, mode=0o755),
        entry("d/f", data=b"f"),
        entry("d", tarfile.SYMTYPE, linkname=str(victim)),
        entry("d/secret", data=b"pwned"),
    )
    with pytest.raises(Corrupt):
        extract(data, dest)
    assert (dest / "d").is_symlink()


def test_symlink_replaced_by_directory_does_not_chmod_the_target(dest, victim):
    data = make_tar(
        entry("d", tarfile.SYMTYPE, linkname=str(victim)),
        entry("d", tarfile.DIRTYPE, mode=0o777, uid=1234),
        entry("s", tarfile.SYMTYPE, linkname=str(victim / "secret"), mode=0o777, uid=1234),
    )
    extract(data, dest)
    assert (dest / "d").is_dir() and not (dest / "d").is_symlink()
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o777
    assert os.lstat(dest / "s").st_uid == 1234  # the link itself was chowned, not its target


def test_whiteout_under_symlinked_parent_is_refused(dest, victim):
    for mode in ("overlay", "delete"):
        data = make_tar(entry("l", tarfile.SYMTYPE, linkname=str(victim)), entry("l/.wh.secret"))
        with pytest.raises(Corrupt, match="symlink"):
            extract(data, dest, mode)
        assert (victim / "secret").exists()
        (dest / "l").unlink()


# ---------------------------------------------------------------- hard links


def test_hard_link_outside_is_refused(dest):
    with pytest.raises(Corrupt, match="outside the layer"):
        extract(make_tar(entry("h", tarfile.LNKTYPE, linkname="../victim/secret")), dest)


def test_hard_link_to_symlink_links_the_symlink_itself(dest, victim):
    data = make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(victim / "secret")),
        entry("h", tarfile.LNKTYPE, linkname="s"),
    )
    extract(data, dest)
    assert os.readlink(dest / "h") == str(victim / "secret")
    assert os.lstat(dest / "h").st_ino == os.lstat(dest / "s").st_ino


def test_hard_link_to_missing_target_is_refused(dest):
    data = make_tar(entry("h", tarfile.LNKTYPE, linkname="later"), entry("later", data=b"x"))
    with pytest.raises(Corrupt, match="missing"):
        extract(data, dest)


def test_absolute_hard_link_inside_the_layer_works(dest):
    data = make_tar(entry("bin/a", data=b"prog"), entry("bin/b", tarfile.LNKTYPE, linkname="/bin/a"))
    extract(data, dest)
    assert (dest / "bin/b").read_bytes() == b"prog"
    assert (dest / "bin/a").stat().st_ino == (dest / "bin/b").stat().st_ino


def test_hard_link_through_symlinked_dir_is_refused(dest, victim):
    data = make_tar(
        entry("v", tarfile.SYMTYPE, linkname=str(victim)),
        entry("h", tarfile.LNKTYPE, linkname="v/secret"),
    )
    with pytest.raises(Corrupt, match="symlink"):
        extract(data, dest)


# ---------------------------------------------------------------- whiteouts


@pytest.mark.parametrize("name", [".wh..", ".wh...", "d/.wh..", "d/.wh.", "d/.wh..."])
@pytest.mark.parametrize("mode", ["overlay", "delete"])
def test_dot_whiteouts_are_refused(dest, name, mode):
    (dest / "d").mkdir()
    (dest / "d/keep").write_text("k")
    with pytest.raises(Corrupt, match="invalid whiteout"):
        extract(make_tar(entry(name)), dest, mode)
    assert (dest / "d/keep").read_text() == "k"


def test_overlay_whiteouts(dest):
    data = make_tar(
        entry("d", tarfile.DIRTYPE, mode=0o755),
        entry("d/.wh..wh..opq"),
        entry("d/.wh.gone"),
        entry("d/new", data=b"n"),
    )
    extract(data, dest, "overlay")
    st = os.lstat(dest / "d/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(dest / "d", "trusted.overlay.opaque") == b"y"
    assert (dest / "d/new").read_bytes() == b"n"


def test_delete_whiteouts_and_opaque_keep_this_layers_entries(dest):
    (dest / "d/sub").mkdir(parents=True)
    (dest / "d/old").write_text("o")
    (dest / "e").mkdir()
    (dest / "e/gone").write_text("g")
    (dest / "e/stays").write_text("s")
    data = make_tar(
        entry("d", tarfile.DIRTYPE, mode=0o755),
        entry("d/+early", data=b"1"),  # sorts before the marker: must survive it
        entry("d/.wh..wh..opq"),
        entry("d/new", data=b"2"),
        entry("e/.wh.gone"),
        entry("e/.wh.never-existed"),
        entry("nodir/.wh.x"),
    )
    extract(data, dest, "delete")
    assert sorted(os.listdir(dest / "d")) == ["+early", "new"]
    assert sorted(os.listdir(dest / "e")) == ["stays"]
    assert not (dest / "nodir").exists()


# ---------------------------------------------------------------- metadata


def test_devices_setuid_owners_xattrs_and_times(dest):
    data = make_tar(
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        entry("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9, gid=6),
        entry("fifo", tarfile.FIFOTYPE, mode=0o620),
        entry("bin/su", data=b"su", mode=0o4755, uid=1000, gid=2000, xattrs={"user.note": "hello"}),
        entry("etc", tarfile.DIRTYPE, mode=0o1777, mtime=1_500_000_000),
        entry("etc/f", data=b"x", xattrs={"trusted.overlay.redirect": "/etc"}),
    )
    assert extract(data, dest) == 3
    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6 and os.minor(loop.st_rdev) == 9
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    su = os.lstat(dest / "bin/su")
    assert (stat.S_IMODE(su.st_mode), su.st_uid, su.st_gid) == (0o4755, 1000, 2000)
    assert su.st_mtime == 1_600_000_000
    assert os.getxattr(dest / "bin/su", "user.note") == b"hello"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "etc/f")  # the image may not set overlay metadata
    etc = os.lstat(dest / "etc")
    assert stat.S_IMODE(etc.st_mode) == 0o1777 and etc.st_mtime == 1_500_000_000


def test_duplicate_entries_later_wins(dest):
    data = make_tar(
        entry("f", data=b"one"),
        entry("f", data=b"two", mode=0o600),
        entry("x", data=b"file"),
        entry("x", tarfile.DIRTYPE, mode=0o755),
        entry("x/in", data=b"in"),
        entry("y", tarfile.DIRTYPE, mode=0o755),
        entry("y/in", data=b"in"),
        entry("y", data=b"now a file"),
    )
    extract(data, dest)
    assert (dest / "f").read_bytes() == b"two"
    assert stat.S_IMODE((dest / "f").stat().st_mode) == 0o600
    assert (dest / "x/in").read_bytes() == b"in"
    assert (dest / "y").read_bytes() == b"now a file"


def test_replacing_a_hard_linked_file_does_not_write_through_the_link(dest):
    (dest / "a").write_text("shared")
    os.link(dest / "a", dest / "b")
    extract(make_tar(entry("a", data=b"new")), dest, "delete")
    assert (dest / "b").read_text() == "shared"


# ---------------------------------------------------------------- broken input


def test_truncated_member_is_corrupt(dest):
    data = make_tar(entry("big", data=b"x" * 5000))
    with pytest.raises(Corrupt, match="truncated|unexpected end"):
        extract(data[:2048], dest)


def test_declared_size_smaller_than_real_is_corrupt(dest):
    data = bytearray(make_tar(entry("f", data=b"A" * 1000), entry("g", data=b"g")))
    offset = 0  # the header of "f" (no pax header: nothing needs one)
    assert data[0:2] == b"f\x00"
    header = data[offset : offset + 512]
    header[124:136] = b"%011o\x00" % 100
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    data[offset : offset + 512] = header
    with pytest.raises(Corrupt, match="bad header"):
        extract(bytes(data), dest)


def test_garbage_is_corrupt(dest):
    with pytest.raises(Corrupt):
        extract(os.urandom(4096), dest)


def test_decompression_bomb_is_refused(dest):
    bomb = gzip.compress(make_tar(entry("zeros", data=bytes(8 << 20))))
    assert len(bomb) < 64 << 10
    with pytest.raises(Corrupt, match="limit"):
        archive.extract_layer(archive.decompressed(io.BytesIO(bomb)), dest, "overlay", max_size=1 << 20)
    assert (dest / "zeros").stat().st_size <= 2 << 20


def test_truncated_gzip_is_corrupt(dest):
    blob = gzip.compress(make_tar(entry("f", data=os.urandom(100_000))))
    with pytest.raises(Corrupt):
        archive.extract_layer(archive.decompressed(io.BytesIO(blob[:-5000])), dest, "overlay")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_decompressed_sniffs_the_format(compression):
    import zstandard

    plain = make_tar(entry("f", data=b"hello"))
    blob = {"none": plain, "gzip": gzip.compress(plain), "zstd": zstandard.ZstdCompressor().compress(plain)}[compression]
    assert archive.decompressed(io.BytesIO(blob)).read() == plain


def test_gzip_members_in_a_row_and_zero_padding_read_as_one_stream():
    one, two = os.urandom(3 << 20), b"second member"
    blob = gzip.compress(one) + b"\0" * 10 + gzip.compress(two) + b"\0" * 512
    stream = archive.decompressed(io.BytesIO(blob))
    assert b"".join(iter(lambda: stream.read(7000), b"")) == one + two


@pytest.mark.parametrize("damage", ["crc", "garbage-after", "truncated"])
def test_damaged_gzip_is_an_error_not_short_data(damage):
    import zlib

    blob = bytearray(gzip.compress(os.urandom(100_000)))
    if damage == "crc":
        blob[-6] ^= 1
    elif damage == "garbage-after":
        blob += b"not gzip"
    else:
        del blob[-3:]
    with pytest.raises((zlib.error, EOFError)):
        archive.decompressed(io.BytesIO(bytes(blob))).read()


# ---------------------------------------------------------------- changes and export


def build_tree(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc/conf").write_text("v1")
    (root / "etc/link").symlink_to("conf")
    (root / "bin").mkdir()
    (root / "bin/a").write_bytes(b"prog")
    os.link(root / "bin/a", root / "bin/b")
    os.chown(root / "bin/a", 12, 34)
    os.chmod(root / "bin/a", 0o4711)
    os.setxattr(root / "bin/a", "user.k", b"\xffbinary")
    os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mkfifo(root / "fifo")


def listing(root: Path) -> list:
    rows = []
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        extra = path.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(path) if path.is_symlink() else None
        xattrs = sorted((k, os.getxattr(path, k)) for k in os.listxattr(path)) if not path.is_symlink() else []
        rows.append((rel, st.st_mode, st.st_uid, st.st_gid, st.st_rdev, int(st.st_mtime), extra, xattrs))
    return rows


def test_write_layer_round_trips_and_is_deterministic(tmp_path, dest):
    src = tmp_path / "dest" / "src"
    build_tree(src)
    changes = archive.tree_changes(None, src)
    first, second = io.BytesIO(), io.BytesIO()
    archive.write_layer(src, changes, first)
    archive.write_layer(src, changes, second)
    assert first.getvalue() == second.getvalue()
    out = dest / "out"
    out.mkdir()
    extract(first.getvalue(), out)
    assert listing(out) == listing(src)
    assert (out / "bin/a").stat().st_ino == (out / "bin/b").stat().st_ino


def test_tree_changes_lists_parents_of_changes(dest):
    old, new = dest / "old", dest / "new"
    build_tree(old)
    os.system(f"cp -a {old} {new}")
    (new / "etc/conf").write_text("v2, longer")
    (new / "null").unlink()
    (new / "d/sub").mkdir(parents=True)
    (new / "d/sub/f").write_text("f")
    assert archive.tree_changes(old, new) == [
        Change("A", "/d"),
        Change("A", "/d/sub"),
        Change("A", "/d/sub/f"),
        Change("C", "/etc"),
        Change("C", "/etc/conf"),
        Change("D", "/null"),
    ]


def test_write_layer_whiteouts_and_opaque(dest):
    (dest / "d").mkdir()
    buf = io.BytesIO()
    archive.write_layer(dest, [Change("D", "/gone"), Change("C", "/d"), Change("D", "/d/x")], buf, opaque_dirs={"/d"})
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert names == ["d", "d/.wh..wh..opq", "d/.wh.x", ".wh.gone"]


def test_fractional_mtimes_of_pax_headers_are_extracted(dest):
    """Python's tarfile writes sub-second mtimes into pax headers (a build context made with tar.add)."""
    import io
    import tarfile

    from berth.core.oci.archive import extract_layer

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (("d", tarfile.DIRTYPE), ("d/f", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mtime = kind, 1445412480.5
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    buf.seek(0)
    extract_layer(buf, dest, "delete")
    assert int((dest / "d" / "f").stat().st_mtime) == 1445412480


def test_fuse_overlayfs_whiteout_files_are_changes_not_content(dest):
    """fuse-overlayfs's upper (whiteout_files): ``.wh.NAME`` deletes NAME and
    ``.wh..wh..opq`` makes its directory opaque; neither is exported as content."""
    lower, upper = dest / "lower", dest / "upper"
    for rel in ("bin/ls", "bin/sh", "etc/old/a", "etc/old/b"):
        (lower / rel).parent.mkdir(parents=True, exist_ok=True)
        (lower / rel).write_text(rel)
    (upper / "bin").mkdir(parents=True)
    (upper / "bin" / ".wh.ls").write_text("")
    (upper / "etc" / "old").mkdir(parents=True)
    (upper / "etc" / "old" / ".wh..wh..opq").write_text("")
    (upper / "etc" / "old" / "b").write_text("new b")
    assert archive.overlay_changes(upper, [lower], whiteout_files=True) == [
        Change("C", "/bin"), Change("D", "/bin/ls"), Change("C", "/etc"), Change("C", "/etc/old"),
        Change("D", "/etc/old/a"), Change("C", "/etc/old/b")]
    entries, opaque = archive.overlay_upper_entries(upper, whiteout_files=True)
    assert entries == [Change("A", "/bin"), Change("D", "/bin/ls"), Change("A", "/etc"), Change("A", "/etc/old"),
                       Change("A", "/etc/old/b")]
    assert opaque == {"/etc/old"}
    out = io.BytesIO()
    archive.write_layer(upper, entries, out, opaque)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert sorted(names) == ["bin", "bin/.wh.ls", "etc", "etc/old", "etc/old/.wh..wh..opq", "etc/old/b"]
