"""Is a run's process still alive? A run killed with SIGKILL cannot record its own end."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mamabear.store import Store


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return True


def running_here(run: dict) -> bool:
    """The run is marked running and its process on this machine is alive."""
    return run["status"] == "running" and run.get("host") == this_host() and pid_alive(run.get("pid"))


def is_orphan(run: dict) -> bool:
    """Marked running, but its process on this machine is gone (killed, crashed, machine rebooted)."""
    return run["status"] == "running" and run.get("host") == this_host() and not pid_alive(run.get("pid"))


def settle_orphans(store: Store, runs: list[dict]) -> list[dict]:
    """Record runs whose process died as interrupted (resumable), and return the rows as they are now."""
    for run in runs:
        if is_orphan(run):
            error = f"its process (pid {run['pid']}) ended without finishing; `mamabear resume {run['id']}` continues it"
            if run.get("attempt"):
                store.finish_attempt(run["id"], run["attempt"], "interrupted", error)
            else:
                store.update_run(run["id"], status="interrupted", error=error)
            run.update(store.run(run["id"]))
    return runs
