"""Is a run's process still alive? A run killed with SIGKILL cannot record its own end."""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import replace

from mamabear.errors import UsageError
from mamabear.status import Status
from mamabear.store.database import Store
from mamabear.store.rows import RunRow


def this_host() -> str:
    return socket.gethostname()


# A run's process stamps its row when it starts and beats every 2 s; its own start is before both. A pid whose process
# started later than that (plus this much clock slack) was reused by another process: after a reboot, say.
PID_REUSE_SLACK_S = 2.0  # and a process start time read from /proc may be a second off (boot time in whole seconds)


def pid_alive(pid: int | None, since: float | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie has ended); ``since``: when the run's process was last known to run, so a
    pid reused by a process started after that is not taken for it."""
    import psutil

    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return since is None or process.create_time() <= since + PID_REUSE_SLACK_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process holds that pid


def _known_at(run: RunRow) -> float:
    return max(run.heartbeat_at or 0.0, run.created_at)


def running_here(run: RunRow) -> bool:
    """The run is marked running and its process on this machine is alive."""
    return run.status == Status.RUNNING and run.host == this_host() and pid_alive(run.pid, _known_at(run))


# A running run's process beats (in the store) every CANCEL_POLL_S (2 s) while it runs, from its watchdog thread and
# before each model call. A run on another machine sharing the store whose heartbeat is older than this is lost.
HEARTBEAT_STALE_S = 20.0


def stale_after_s() -> float:
    """How old a heartbeat may get before its run is taken as lost (MAMABEAR_HEARTBEAT_STALE_S overrides it)."""
    try:
        return max(5.0, float(os.environ.get("MAMABEAR_HEARTBEAT_STALE_S") or HEARTBEAT_STALE_S))
    except ValueError:
        return HEARTBEAT_STALE_S


def heartbeat_age(run: RunRow, store_back_at: float = 0.0) -> float | None:
    """How long ago the run's process last beat (or, running and never beating, was created). ``store_back_at``: when
    the store answered again after an outage; no process could beat while it did not, so the age counts from then."""
    since = run.heartbeat_at if run.heartbeat_at is not None else run.created_at if run.status == Status.RUNNING else None
    return None if since is None else max(0.0, time.time() - max(since, store_back_at))


def is_orphan(run: RunRow, store_back_at: float = 0.0) -> bool:
    """Marked running, but its process is gone: on this machine, its pid has ended (killed, crashed, rebooted); on
    another machine (a shared store), its heartbeat stopped (the process or the machine died, or lost the store)."""
    if run.status != Status.RUNNING:
        return False
    if run.host == this_host():
        return not pid_alive(run.pid, _known_at(run))
    age = heartbeat_age(run, store_back_at)
    return age is not None and age > stale_after_s()


def settle_orphans(store: Store, runs: list[RunRow]) -> list[RunRow]:
    """Record runs whose process died as interrupted (resumable), and return the rows as they are now."""
    settled = []
    for run in runs:
        if is_orphan(run, store.back_at):
            if run.host == this_host():
                error = f"its process (pid {run.pid}) ended without finishing; `mamabear resume {run.id}` continues it"
            else:
                error = (
                    f"its machine {run.host} stopped beating {heartbeat_age(run) or 0:.0f}s ago (pid {run.pid}); `mamabear resume {run.id}` continues it here"
                )
            if run.attempt:
                store.finish_attempt(run.id, run.attempt, Status.INTERRUPTED, error, ended_at=run.heartbeat_at)  # recovery counts from then
            else:
                store.update_run(run.id, status=Status.INTERRUPTED, error=error)
            usage = {k: getattr(run, k) for k in ("tokens_in", "tokens_out", "cost_usd", "llm_calls", "seconds")}
            run = replace(store.run(run.id), **usage)  # a listing's row keeps its usage figures
        settled.append(run)
    return settled


def current_runs(store: Store, limit: int = 20, status: str | None = None, crew: str | None = None) -> list[RunRow]:
    """The newest runs as they are: a run whose process died is recorded interrupted first, not listed running."""
    settle_orphans(store, store.list_runs(limit=limit, status=Status.RUNNING))
    return store.list_runs(limit=limit, status=status, crew=crew)


def current_run(store: Store, run_id: str) -> RunRow:
    """Run ``run_id`` as it is (settled first when its process died)."""
    return settle_orphans(store, [store.run(run_id)])[0]


def cancel_run(store: Store, run_id: str, wait_s: float = 30.0) -> RunRow:
    """Ask a running run to stop: flag it in the store and signal its process; wait for it to settle.

    The process stops as on Ctrl-C (checkpointed) and records itself cancelled. A run on
    another machine sees the flag before its next model call.
    """
    run = settle_orphans(store, [store.run(run_id)])[0]
    if run.status == Status.QUEUED and store.cancel_queued(run_id):  # no worker has started it: it never will
        return store.run(run_id)
    if run.status == Status.INTERRUPTED and (run.options or {}).get("queue"):  # its worker was lost: not queued again
        if store.set_status_if(run_id, Status.INTERRUPTED, Status.CANCELLED, "cancelled after its worker was lost"):
            return store.run(run_id)
    run = store.run(run_id)  # a worker may have taken it meanwhile
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
