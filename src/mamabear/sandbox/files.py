"""File view/create/str_replace/insert inside one directory that no path may leave.

Paths are relative to the workspace. An absolute path, a ``..`` that climbs out, or a
symlink that points out is refused, whichever component it is in; so is a file with more
than one hard link (the other name may be outside), a pipe or a device.

The check is made on the path, then every file is reached from the workspace one component
at a time, through directory descriptors that follow no symlink: a command running meanwhile
that swaps a directory for a symlink out of the workspace gets a refusal, never a write
outside it (mamabear may run as root).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mamabear.sandbox.backend import Refused

VIEW_LINES = 400  # lines shown when no range is given
MOVED = "changed while it was being used (a directory on its way became a link, or went away); try again"


def inside(root: Path, path: str) -> Path:
    """The real path of ``path`` under ``root``, or Refused when it would leave the workspace."""
    if not path or not path.strip():
        raise Refused("give a path relative to the workspace.")
    if os.path.isabs(path) or path.startswith("~"):
        raise Refused(f"'{path}' is an absolute path; give a path relative to the workspace.")
    base = root.resolve()
    try:
        target = Path(os.path.realpath(base / path))  # follows every symlink on the way
    except OSError as exc:  # a link on the way was swapped for a file or a folder while it was read (EINVAL)
        raise Refused(f"'{path}' changed while it was being resolved ({exc.strerror}); try again.") from exc
    if target != base and base not in target.parents:
        raise Refused(f"'{path}' is outside the workspace; only files inside it can be used.")
    return target


@contextmanager
def _folder(root: Path, target: Path, path: str, make: bool = False, owner: int | None = None) -> Iterator[int]:
    """A descriptor of ``target``'s directory, reached from the workspace with no symlink followed; ``make``: create
    the missing directories on the way (given to ``owner``)."""
    fd = _walk(root.resolve(), target, path, make, owner)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(base: Path, target: Path, path: str, make: bool, owner: int | None) -> int:
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in target.relative_to(base).parts[:-1]:
            if make:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    if owner is not None:
                        os.chown(part, owner, owner, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            step = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = step
        return fd
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, NotADirectoryError):
            raise Refused(f"{path}: a component of it is a file, not a directory.") from exc
        if isinstance(exc, FileNotFoundError):
            raise Refused(f"{path}: a directory on its way does not exist.") from exc
        if isinstance(exc, PermissionError):
            raise Refused(f"cannot use {path} ({exc.strerror}).") from exc
        raise Refused(f"{path} {MOVED}.") from exc


def view(root: Path, path: str, view_range: list[int] | None = None) -> str:
    target = inside(root, path)
    if target == root.resolve() or target.is_dir():
        return _listing(root, target, path)
    lines = _read(root, target, path).splitlines()
    start, end = 1, min(len(lines), VIEW_LINES)
    if view_range:
        if len(view_range) != 2 or view_range[0] < 1:
            raise Refused("view_range is [first line, last line], counting from 1 (-1 for the end).")
        start, end = view_range[0], len(lines) if view_range[1] == -1 else min(view_range[1], len(lines))
    shown = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    more = f"\n[{len(lines) - end} more lines; view a range to see them]" if end < len(lines) else ""
    return (shown or "(empty file)") + more


def _listing(root: Path, target: Path, path: str) -> str:
    if target == root.resolve():
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    else:
        with _folder(root, target, path) as parent:
            try:
                fd = os.open(target.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            except OSError as exc:
                raise Refused(f"{path} {MOVED}.") from exc
    try:
        with os.scandir(fd) as entries:
            names = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries if not e.name.startswith("."))
    finally:
        os.close(fd)
    return "\n".join(names) if names else "(empty directory)"


def create(root: Path, path: str, text: str, owner: int | None = None) -> str:
    """Write a whole file, making its directories; ``owner``: who the new file and directories belong to (a jail's user)."""
    target = inside(root, path)
    if target == root.resolve() or target.is_dir():
        raise Refused(f"'{path}' is a directory.")
    existed = _write(root, target, path, text, make=True, owner=owner)
    return f"{'overwrote' if existed else 'created'} {path} ({len(text.encode())} bytes)"


def str_replace(root: Path, path: str, old: str, new: str) -> str:
    target = inside(root, path)
    text = _read(root, target, path)
    count = text.count(old) if old else 0
    if count != 1:
        found = "does not occur" if count == 0 else f"occurs {count} times"
        raise Refused(f"old_str {found} in {path}; it must match exactly once (include more context).")
    _write(root, target, path, text.replace(old, new, 1))
    return f"replaced 1 occurrence in {path}"


def insert(root: Path, path: str, line: int, text: str) -> str:
    target = inside(root, path)
    lines = _read(root, target, path).splitlines(keepends=True)
    if not 0 <= line <= len(lines):
        raise Refused(f"insert_line must be from 0 to {len(lines)} (the number of lines in {path}).")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    lines.insert(line, text if text.endswith("\n") else text + "\n")
    _write(root, target, path, "".join(lines))
    return f"inserted {len(text.splitlines()) or 1} line(s) after line {line} of {path}"


def _read(root: Path, target: Path, path: str) -> str:
    with _folder(root, target, path) as folder:
        try:
            # O_NONBLOCK: a pipe opens at once (and is refused below) instead of waiting for a writer.
            fd = os.open(target.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError as exc:
            raise Refused(f"{path} does not exist; create it first.") from exc
        except OSError as exc:
            raise Refused(f"cannot read {path} ({exc.strerror}).") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path} is not a regular file (a directory, pipe or device); only regular files can be read.")
        _single(info, path)
        return handle.read().decode("utf-8", errors="replace")


def _write(root: Path, target: Path, path: str, text: str, make: bool = False, owner: int | None = None) -> bool:
    """Write the file whole; whether it existed. O_NOFOLLOW: a symlink swapped in is refused, not followed. O_NONBLOCK:
    opening a FIFO waits for a reader that may never come; it fails or opens at once, then only a regular file is written."""
    with _folder(root, target, path, make=make, owner=owner) as folder:
        existed = True
        try:
            fd = os.open(target.name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError:
            existed = False
            try:
                fd = os.open(target.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
            except OSError as exc:
                raise Refused(f"cannot write {path} ({exc.strerror}).") from exc
        except OSError as exc:
            raise Refused(f"cannot write {path} ({exc.strerror}); only regular files can be written.") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path} is not a regular file (a pipe or device); only regular files can be written.")
        _single(info, path)
        if owner is not None and not existed:
            os.fchown(fd, owner, owner)
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return existed


def _single(info: os.stat_result, path: str) -> None:
    """A file with another name (a hard link) may be a file outside the workspace under a name inside it."""
    if info.st_nlink > 1:
        raise Refused(f"{path} has {info.st_nlink} hard links, and another name may be outside the workspace; copy it to a new file to use it.")
