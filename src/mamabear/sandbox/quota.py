"""The local sandbox's disk quota (``workspace_mib``): what a session's files (its workspace, its /tmp, its saved
shell state) take on disk, as ``du`` counts them.

The files stay on disk, in plain folders; nothing is put in RAM or a loop device. Before a command, its file-size
limit (``ulimit -f``) becomes at most the room left; while it runs, the folders are measured every ``POLL_S`` seconds
(4 times as long as a measurement takes, for a large workspace), and a command that takes them past the quota is
killed. What that promises, precisely: one file is cut at the room left when its command started; the session's
files pass the quota only by what a command writes between two measurements, and it is then killed (one that ends
before the next measurement is told so); a session past its quota may shrink but not grow (its files are cut at
``FLOOR``, then its command killed). The file tools' writes and a browser's downloads count from the next command.
Not counted: the jail's /dev/shm, a tmpfs of ``jail.SHM_MIB`` that ends with each command.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

MIB = 1 << 20
POLL_S = 0.25
FLOOR = MIB  # the file-size limit of a session past its quota: its shell can still save its state


class Unmeasurable(OSError):
    """A folder of the session mamabear cannot list (a non-root caller's command made it unreadable): it counts as full."""


def usage(folders: Iterable[Path]) -> int:
    """Bytes the folders' files take on disk (their blocks, as ``du`` counts them; a file with two names, once)."""
    total, seen = 0, set()
    stack = [str(folder) for folder in folders]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted meanwhile
                    if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError as exc:
            raise Unmeasurable(exc.errno, f"{top} cannot be read") from None
    return total


class Watch:
    """The session's folders, measured before a command (``room``) and, from ``start``, while it runs: ``over()`` is
    called once, from the watch's thread, when they pass the quota; ``why`` then says so, for the command's result."""

    def __init__(self, folders: tuple[Path, ...], quota: int) -> None:
        self.folders, self.quota = folders, quota
        self.before = self._measure()
        self.limit = quota if self.before is None else max(quota, self.before)  # past it already: never larger
        self.why = ""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def room(self) -> int:
        """The largest file the command may write, by the quota (at least FLOOR)."""
        return max(self.quota - (self.quota if self.before is None else self.before), FLOOR)

    def start(self, over: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(over,), name="mamabear-quota", daemon=True)
        self._thread.start()

    def finish(self) -> str:
        """Stop measuring and measure once more (a command may write and end between two measurements): ``why``."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if not self.why:
            self.why = self._past(ended=True)
        return self.why

    def _run(self, over: Callable[[], None]) -> None:
        interval = POLL_S
        while not self._done.wait(interval):
            started = time.monotonic()
            self.why = self._past()
            if self.why:
                over()
                return
            interval = max(POLL_S, 4 * (time.monotonic() - started))

    def _measure(self) -> int | None:
        """The folders' usage; None when one cannot be read (as full)."""
        try:
            return usage(self.folders)
        except Unmeasurable:
            return None

    def _past(self, ended: bool = False) -> str:
        """Empty while the folders fit; else what happened (``ended``: after the command, which also tells a full quota)."""
        used = self._measure()
        files, quota = "the session's files (workspace and /tmp)", f"quota of {self.quota // MIB} MiB (workspace_mib)"
        if used is None:
            what = f"a folder of the session cannot be read, so its {quota} cannot be kept; make it readable"
        elif used > self.limit:
            what = f"{'the command' if ended else 'it'} took {files} past their {quota}; delete files to make room"
        elif ended and used > self.quota - FLOOR:
            return f"{files} fill their {quota}: a larger file cannot be written; delete files to make room"
        else:
            return ""
        return what if ended else f"the command was killed: {what}"
