"""Is a run's process still alive? A run killed with SIGKILL cannot record its own end."""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path

from mamabear.errors import UsageError
from mamabear.status import Status
from mamabear.store.database import Store
from mamabear.store.rows import RunRow


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


def running_here(run: RunRow) -> bool:
    """The run is marked running and its process on this machine is alive."""
    return run.status == Status.RUNNING and run.host == this_host() and pid_alive(run.pid)


def is_orphan(run: RunRow) -> bool:
    """Marked running, but its process on this machine is gone (killed, crashed, machine rebooted)."""
    return run.status == Status.RUNNING and run.host == this_host() and not pid_alive(run.pid)


def settle_orphans(store: Store, runs: list[RunRow]) -> list[RunRow]:
    """Record runs whose process died as interrupted (resumable), and return the rows as they are now."""
    settled = []
    for run in runs:
        if is_orphan(run):
            error = f"its process (pid {run.pid}) ended without finishing; `mamabear resume {run.id}` continues it"
            if run.attempt:
                store.finish_attempt(run.id, run.attempt, Status.INTERRUPTED, error)
            else:
                store.update_run(run.id, status=Status.INTERRUPTED, error=error)
            usage = {k: getattr(run, k) for k in ("tokens_in", "tokens_out", "cost_usd", "llm_calls", "seconds")}
            run = replace(store.run(run.id), **usage)  # a listing's row keeps its usage figures
        settled.append(run)
    return settled


def cancel_run(store: Store, run_id: str, wait_s: float = 30.0) -> RunRow:
    """Ask a running run to stop: flag it in the store and signal its process; wait for it to settle.

    The process stops as on Ctrl-C (checkpointed) and records itself cancelled. A run on
    another machine sees the flag before its next model call.
    """
    run = settle_orphans(store, [store.run(run_id)])[0]
    if run.status != Status.RUNNING:
        raise UsageError(f"run {run_id} is {run.status}, not running; there is nothing to cancel.")
    store.request_cancel(run_id)
    if running_here(run) and run.pid:
        os.kill(run.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        run = settle_orphans(store, [store.run(run_id)])[0]
        if run.status != Status.RUNNING:
            break
        time.sleep(0.1)
    return run
