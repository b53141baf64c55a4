"""Directory trees of any depth, on the heap instead of the Python stack.

An image may hold a directory thousands of levels deep: `shutil.rmtree`,
`os.walk` (3.11) and a recursive walk raise RecursionError there. These do
the same work with an explicit stack.

- `remove_tree(path)`: shutil.rmtree's fd-based safety (never follows a
  symlink, each directory opened relative to its parent with O_NOFOLLOW)
  with one descriptor open at a time whatever the depth: a directory is
  left through "..", checked to be the very directory (device, inode) it
  came from.
- `iterate(generator)`: runs a recursive algorithm written as a generator
  whose recursive calls are ``result = yield subcall(...)``.
- `walk_files(root)`: (directory path, file names) for every directory, as
  os.walk yields them top-down, without recursion.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # annotations only: see "Start-up cost" in docs/architecture.md
if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def iterate(generator: Generator) -> object:
    """Run `generator` and every generator it yields to completion, depth first;
    each yielded generator's return value is sent back to the one that yielded it."""
    stack = [generator]
    value = None
    while stack:
        try:
            call = stack[-1].send(value)
        except StopIteration as stop:
            stack.pop()
            value = stop.value
            continue
        stack.append(call)
        value = None
    return value


def remove_tree(path: os.PathLike | str, dir_fd: int | None = None, ignore_errors: bool = False) -> None:
    """Remove `path` (relative to `dir_fd` if given) and everything under it.

    A missing `path` is not an error; a symlink or file is unlinked, never followed.
    """
    try:
        _remove_tree(os.fspath(path), dir_fd)
    except FileNotFoundError:
        pass
    except OSError:
        if not ignore_errors:
            raise


def _remove_tree(path: str, dir_fd: int | None) -> None:
    st = os.lstat(path, dir_fd=dir_fd)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path, dir_fd=dir_fd)
        return
    fd = os.open(path, _DIR_FLAGS, dir_fd=dir_fd)
    # one frame per level: the directory's identity, its name, the subdirectories still to remove
    stack: list[tuple[tuple[int, int], str, list[str]]] = []
    try:
        if _identity(os.fstat(fd)) != _identity(st):
            raise OSError(f"{path}: replaced while being removed")
        stack.append((_identity(st), path, _clear_files(fd)))
        while stack:
            pending = stack[-1][2]
            if pending:
                name = pending.pop()
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:  # a symlink put there meanwhile (ELOOP), or not a directory now
                    if exc.errno not in (40, 20):  # ELOOP, ENOTDIR
                        raise
                    os.unlink(name, dir_fd=fd)
                    continue
                os.close(fd)
                fd = child
                stack.append((_identity(os.fstat(fd)), name, _clear_files(fd)))
                continue
            _, name, _ = stack.pop()
            if not stack:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _identity(os.fstat(fd)) != stack[-1][0]:
                raise OSError(f"{path}: a directory was moved while being removed")
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path, dir_fd=dir_fd)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in directory `fd`; the names of its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                try:
                    os.unlink(entry.name, dir_fd=fd)
                except FileNotFoundError:
                    pass
    return subdirs


def walk_files(root: os.PathLike | str) -> Iterator[tuple[str, list[str]]]:
    """(directory, names of its non-directories) for `root` and every directory
    under it, top-down; symlinks to directories are not followed; unreadable
    directories are skipped, as os.walk does."""
    pending = [os.fspath(root)]
    while pending:
        directory = pending.pop()
        files, subdirs = [], []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        is_dir = False
                    (subdirs if is_dir else files).append(entry.name)
        except OSError:
            continue
        yield directory, files
        pending.extend(os.path.join(directory, name) for name in reversed(subdirs))
