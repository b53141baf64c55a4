"""COPY and ADD: which files, where to, and the hash the cache keys them by.

`plan` resolves the sources (the context, or another stage's or image's
filesystem for --from; wildcards; ADD's URLs, fetched; ADD's local tar
archives, extracted) and hashes their content and metadata: Docker's
`file:<hash>`, `dir:<hash>` or `multi:<hash>`. `copy_entries` then lays
them out in the image: the destination resolved inside the image's root,
its missing parents made, owners from --chown (names looked up in the
image's /etc/passwd and /etc/group), modes from --chmod.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from collections import namedtuple

from berth.core.build.context import Context, SourceError
from berth.core.build.ignore import Matcher
from berth.core.build.layer import Entries, ImageRoot, add_dir, add_parents, file_entry, in_root
from berth.core.build.parser import DockerfileError
from berth.core.build.scratch import Scratch

WILDCARDS = set("*?[")
ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


class Item(namedtuple("Item", "context rel kind name", defaults=(None,))):
    """A source: its Context, its path there, kind: file (or symlink), dir, or archive (ADD),
    and the name it is copied under when that is not the last part of rel (a followed symlink)."""

    __slots__ = ()


class Plan:
    def __init__(self, cmd: str, dest: str, flags: dict):
        self.cmd, self.dest, self.flags = cmd, dest, flags
        self.items: list[Item] = []
        self.digest = ""
        self.closers: list = []

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers = []


def plan(builder, stage, cmd: str, sources: list[str], dest: str, flags: dict, add: bool) -> Plan:
    result = Plan(cmd, dest, flags)
    try:
        _plan(builder, stage, result, sources, add)
    except SourceError as exc:
        result.close()
        raise DockerfileError(f"{cmd} failed: {exc}") from None
    except BaseException:
        result.close()
        raise
    return result


def _plan(builder, stage, result: Plan, sources: list[str], add: bool) -> None:
    context = builder.context
    if "from" in result.flags:
        context = _from_context(builder, stage, result)
    hasher = hashlib.sha256()
    for source in sources:
        if add and source.startswith(("http://", "https://")):
            result.items.append(_download(builder, result, source))
            continue
        rel = context.clean(source) if context is builder.context else _clean_any(source)
        if WILDCARDS & set(rel):
            matches = context.glob(rel)
        else:
            context.lstat(rel)
            matches = [rel]
        for match in matches:
            st = context.lstat(match)
            name = None
            if stat.S_ISLNK(st.st_mode):  # a source that is a link inside the context is followed, as Docker
                inner = _link_inside(context, match)
                if inner is not None:
                    match, name, st = inner, posixpath.basename(match), context.lstat(inner)
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
            if add and kind == "file" and stat.S_ISREG(st.st_mode) and _is_archive(context.host_path(match)):
                kind = "archive"
            result.items.append(Item(context, match, kind, name))
    if not result.items:
        raise DockerfileError(f"{result.cmd} failed: no source files were specified")
    if len(result.items) > 1 and not result.dest.endswith("/"):
        raise DockerfileError(f"When using {result.cmd} with more than one source file, the destination must be a "
                              "directory and end with a /")
    for item in result.items:
        _hash_item(hasher, item)
    if len(result.items) > 1:
        kind = "multi"
    else:
        kind = "dir" if result.items[0].kind == "dir" else "file"
    result.digest = f"{kind}:{hasher.hexdigest()}"


def _link_inside(context: Context, rel: str) -> str | None:
    """Where the symlink `rel` leads, as a context path, if that is inside the context and not
    left out; None for a link out of it (then copied as the link itself, never followed)."""
    real = os.path.realpath(context.host_path(rel))
    root = str(context.root)
    if real == root or not real.startswith(root + os.sep) or not os.path.lexists(real):
        return None
    inner = os.path.relpath(real, root).replace(os.sep, "/")
    return None if context.ignore.excluded(inner) else inner


def _clean_any(source: str) -> str:
    cleaned = posixpath.normpath("/" + source).lstrip("/")
    return cleaned or "."


def _from_context(builder, stage, result: Plan) -> Context:
    """--from=STAGE|INDEX|IMAGE: that filesystem, mounted for as long as the plan lives."""
    name = result.flags["from"]
    source = None
    for earlier in builder.stages[:stage.index]:
        if earlier.name == name.lower() or str(earlier.index) == name:
            source = earlier
            break
    if source is not None:
        image = source.image
    elif name.isdigit():
        raise DockerfileError(f"invalid from flag value {name}: refers to current build stage")
    elif any(s.name == name.lower() for s in builder.stages):
        raise DockerfileError(f"invalid from flag value {name}: refers to current build stage")
    else:
        try:
            image = builder.image_named(name)
        except Exception as exc:
            raise DockerfileError(f"invalid from flag value {name}: {exc}") from None
    view = ImageRoot(builder.engine, image)
    root = view.__enter__()
    result.closers.append(lambda: view.__exit__(None, None, None))
    return Context(root, "", Matcher([]))


def _is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head.startswith(ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _download(builder, result: Plan, url: str) -> Item:
    """ADD URL: fetched into a private directory; the file keeps the URL's last path component."""
    import email.utils
    import shutil
    import urllib.error
    import urllib.parse
    import urllib.request

    name = posixpath.basename(urllib.parse.urlparse(url).path)
    if result.dest.endswith("/") and not name:
        raise DockerfileError(f"cannot determine filename from url: {url}")
    own = Scratch(builder.engine.root)
    result.closers.append(own.close)
    directory = own.path
    name = name or "download"
    path = os.path.join(directory, name)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
            modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        raise DockerfileError(f"failed to GET {url} with status {exc.code}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise DockerfileError(f"error downloading {url}: {getattr(exc, 'reason', exc)}") from None
    os.chmod(path, 0o600)
    if modified:
        try:
            when = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(path, (when, when))
        except (TypeError, ValueError):
            pass
    return Item(Context(directory, "", Matcher([])), name, "file")


def _hash_item(hasher, item: Item) -> None:
    """Content and metadata (type, mode, link target, path; not times, not owners)."""
    hasher.update(f"{item.name or ''}\0".encode())
    paths = [item.rel] + (list(item.context.walk(item.rel)) if item.kind == "dir" else [])
    for rel in paths:
        host = item.context.host_path(rel)
        st = os.lstat(host)
        hasher.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            hasher.update(os.readlink(host).encode("utf-8", "surrogateescape"))
        elif stat.S_ISREG(st.st_mode):
            hasher.update(_file_digest(host))
        hasher.update(b"\0")


def _file_digest(path: str) -> bytes:
    with open(path, "rb", buffering=0) as f:
        return hashlib.file_digest(f, "sha256").digest()


# -- laying the files out in the image ----------------------------------------------------------


def copy_entries(root: str, plan: Plan) -> Entries:
    uid, gid = _owner(root, plan.flags.get("chown"))
    chmod = _mode(plan.flags.get("chmod"))
    entries = Entries()
    dest = plan.dest
    rel = in_root(root, dest.rstrip("/") or "/")
    existing_dir = os.path.isdir(os.path.join(root, rel)) if rel else True
    into_dir = dest.endswith("/") or existing_dir or plan.items[0].kind in ("dir", "archive")
    for item in plan.items:
        if item.kind == "dir":
            _copy_dir(entries, root, rel, item, uid, gid, chmod)
        elif item.kind == "archive":
            _extract(entries, root, rel, item, plan)
        else:
            target = posixpath.join(rel, item.name or posixpath.basename(item.rel)) if into_dir else rel
            if not target:
                raise DockerfileError(f"{plan.cmd} failed: cannot copy to the root directory as a file")
            add_parents(entries, root, target, uid, gid)
            host = item.context.host_path(item.rel)
            info, source = file_entry(target, os.lstat(host), host, uid, gid, chmod)
            if info is not None:
                entries.add(info, source)
    return entries


def _copy_dir(entries: Entries, root: str, rel: str, item: Item, uid: int, gid: int, chmod: int | None) -> None:
    if rel:
        add_parents(entries, root, rel, uid, gid)
        st = os.lstat(item.context.host_path(item.rel))
        if not os.path.isdir(os.path.join(root, rel)):
            add_dir(entries, root, rel, uid, gid, chmod if chmod is not None else stat.S_IMODE(st.st_mode),
                    st.st_mtime)
    prefix = "" if item.rel == "." else item.rel + "/"
    for path in item.context.walk(item.rel):
        host = item.context.host_path(path)
        target = posixpath.join(rel, path[len(prefix):]) if rel else path[len(prefix):]
        add_parents(entries, root, target, uid, gid)
        info, source = file_entry(target, os.lstat(host), host, uid, gid, chmod)
        if info is not None:
            entries.add(info, source)


def _extract(entries: Entries, root: str, rel: str, item: Item, plan: Plan) -> None:
    """ADD of a local tar archive: its members, under the destination directory, owners kept."""
    from berth.core.errors import Corrupt
    from berth.core.oci.archive import clean_name

    host = item.context.host_path(item.rel)
    try:
        archive = tarfile.open(host, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DockerfileError(f"{plan.cmd} failed: {item.rel}: {exc}") from None
    plan.closers.append(archive.close)
    if rel:
        add_parents(entries, root, rel + "/x")
    for member in archive:
        try:
            parts = clean_name(member.name)
        except Corrupt as exc:
            raise DockerfileError(f"{plan.cmd} failed: {item.rel}: {exc}") from None
        if not parts:
            continue
        target = "/".join(((rel,) if rel else ()) + tuple(parts))
        info = tarfile.TarInfo(target)
        info.mode, info.uid, info.gid, info.mtime = member.mode, member.uid, member.gid, int(member.mtime)
        add_parents(entries, root, target)
        if member.isdir():
            info.type = tarfile.DIRTYPE
            entries.add(info)
        elif member.issym():
            info.type, info.linkname = tarfile.SYMTYPE, member.linkname
            entries.add(info)
        elif member.islnk():
            try:
                link = clean_name(member.linkname)
            except Corrupt as exc:
                raise DockerfileError(f"{plan.cmd} failed: {item.rel}: {exc}") from None
            info.type, info.linkname = tarfile.LNKTYPE, "/".join(((rel,) if rel else ()) + tuple(link))
            entries.add(info)
        elif member.isfile():
            info.size = member.size
            entries.add(info, (lambda m=member: archive.extractfile(m)))


def _owner(root: str, chown: str | None) -> tuple[int, int]:
    """--chown=USER[:GROUP] (names or IDs; a user alone gives its ID as the group too, as Docker)."""
    if not chown:
        return 0, 0
    from berth.core.runtime.errors import StartError
    from berth.core.runtime.users import resolve_user

    user, sep, group = chown.partition(":")
    passwd = os.path.join(root, in_root(root, "/etc/passwd"))
    groups = os.path.join(root, in_root(root, "/etc/group"))
    try:
        uid, gid, _, _ = resolve_user(chown, passwd, groups)
    except StartError as exc:
        raise DockerfileError(f"unable to convert uid/gid chown string to host mapping: {exc}") from None
    if not sep:
        gid = uid
    return uid, gid


def _mode(chmod: str | None) -> int | None:
    if not chmod:
        return None
    try:
        mode = int(chmod, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise DockerfileError(f"invalid chmod parameter: {chmod}")
    return mode
