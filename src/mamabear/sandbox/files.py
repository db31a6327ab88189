"""File view/create/str_replace/insert inside one directory that no path may leave.

Paths are relative to the workspace. An absolute path, a ``..`` that climbs out, or a
symlink that points out is refused, whichever component it is in; so is a file with more
than one hard link (the other name may be outside), a pipe or a device.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mamabear.sandbox.backend import Refused

VIEW_LINES = 400  # lines shown when no range is given


def inside(root: Path, path: str) -> Path:
    """The real path of ``path`` under ``root``, or Refused when it would leave the workspace."""
    if not path or not path.strip():
        raise Refused("give a path relative to the workspace.")
    if os.path.isabs(path) or path.startswith("~"):
        raise Refused(f"'{path}' is an absolute path; give a path relative to the workspace.")
    base = root.resolve()
    target = Path(os.path.realpath(base / path))  # follows every symlink on the way
    if target != base and base not in target.parents:
        raise Refused(f"'{path}' is outside the workspace; only files inside it can be used.")
    return target


def view(root: Path, path: str, view_range: list[int] | None = None) -> str:
    target = inside(root, path)
    if target.is_dir():
        entries = sorted(p.relative_to(target).as_posix() + ("/" if p.is_dir() else "") for p in target.iterdir() if not p.name.startswith("."))
        return "\n".join(entries) if entries else "(empty directory)"
    lines = _read(target, path).splitlines()
    start, end = 1, min(len(lines), VIEW_LINES)
    if view_range:
        if len(view_range) != 2 or view_range[0] < 1:
            raise Refused("view_range is [first line, last line], counting from 1 (-1 for the end).")
        start, end = view_range[0], len(lines) if view_range[1] == -1 else min(view_range[1], len(lines))
    shown = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    more = f"\n[{len(lines) - end} more lines; view a range to see them]" if end < len(lines) else ""
    return (shown or "(empty file)") + more


def create(root: Path, path: str, text: str) -> str:
    target = inside(root, path)
    if target.is_dir():
        raise Refused(f"'{path}' is a directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    existed = target.exists()
    _write(target, text)
    return f"{'overwrote' if existed else 'created'} {path} ({len(text.encode())} bytes)"


def str_replace(root: Path, path: str, old: str, new: str) -> str:
    target = inside(root, path)
    text = _read(target, path)
    count = text.count(old) if old else 0
    if count != 1:
        found = "does not occur" if count == 0 else f"occurs {count} times"
        raise Refused(f"old_str {found} in {path}; it must match exactly once (include more context).")
    _write(target, text.replace(old, new, 1))
    return f"replaced 1 occurrence in {path}"


def insert(root: Path, path: str, line: int, text: str) -> str:
    target = inside(root, path)
    lines = _read(target, path).splitlines(keepends=True)
    if not 0 <= line <= len(lines):
        raise Refused(f"insert_line must be from 0 to {len(lines)} (the number of lines in {path}).")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    lines.insert(line, text if text.endswith("\n") else text + "\n")
    _write(target, "".join(lines))
    return f"inserted {len(text.splitlines()) or 1} line(s) after line {line} of {path}"


def _read(target: Path, path: str) -> str:
    if target.exists() and not target.is_file():
        raise Refused(f"{path} is not a regular file (a directory, pipe or device); only regular files can be read.")
    if not target.is_file():
        raise Refused(f"{path} does not exist; create it first.")
    try:
        with open(target, "rb", opener=_no_follow) as handle:
            _single(os.fstat(handle.fileno()), path)
            return handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise Refused(f"cannot read {path} ({exc.strerror}).") from exc


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def _single(info: os.stat_result, path: str) -> None:
    """A file with another name (a hard link) may be a file outside the workspace under a name inside it."""
    if info.st_nlink > 1:
        raise Refused(f"{path} has {info.st_nlink} hard links, and another name may be outside the workspace; copy it to a new file to use it.")


def _write(target: Path, text: str) -> None:
    # O_NOFOLLOW: a symlink swapped in after the check above is refused, not followed. O_NONBLOCK: opening
    # a FIFO waits for a reader that may never come; it fails or opens at once, then only a regular file is written.
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise Refused(f"cannot write {target.name} ({exc.strerror}); only regular files can be written.") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Refused(f"{target.name} is not a regular file (a pipe or device); only regular files can be written.")
    if info.st_nlink > 1:
        os.close(fd)
        _single(info, target.name)
    os.set_blocking(fd, True)
    os.ftruncate(fd, 0)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
