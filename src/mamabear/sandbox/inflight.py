"""What is running in a local session now, seen from every process: `sandbox stop` (one process) kills the commands
and browsers another process started in it.

Each running jail (or unjailed command) is a file ``running/PID`` in the session's control folder, which the jail never
sees, holding its process's start time, so a pid the system has given to another process since is never killed. A
stopped session's folder has a ``stopped`` mark: a command that registers after the stop sees it and is killed too.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def add(control: Path, pid: int) -> None:
    """Record ``pid`` (the leader of its process group: killing the group ends its jail); killed at once if the session was
    stopped meanwhile."""
    folder = control / "running"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(pid)).write_text(_started(pid) or "")
    if stopped(control):
        _kill(pid)


def discard(control: Path, pid: int) -> None:
    (control / "running" / str(pid)).unlink(missing_ok=True)


def stopped(control: Path) -> bool:
    return (control / "stopped").exists()


def reopen(control: Path) -> None:
    """The session is made again (a lost computer replaced): its commands may run."""
    (control / "stopped").unlink(missing_ok=True)


def stop(control: Path) -> int:
    """Mark the session stopped and kill what runs in it (each process group, its jail with it); how many were running."""
    if not control.is_dir():
        return 0  # a session whose folder is gone: nothing of it can run
    (control / "stopped").touch()
    killed = 0
    for entry in sorted((control / "running").glob("*")):
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and entry.read_text() == _started(pid):
            killed += _kill(pid)
        entry.unlink(missing_ok=True)
    return killed


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), which tells it from a later process given the same pid; None
    when it is gone, "" where there is no /proc to ask (not Linux: the pid is trusted)."""
    if not Path("/proc/self/stat").exists():
        return ""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _kill(pgid: int) -> int:
    try:
        os.killpg(pgid, signal.SIGKILL)
        return 1
    except (ProcessLookupError, PermissionError):
        return 0
