"""The task a worker runs: start or continue one run, as a `mamabear resume` process of its own.

A message can reach a worker more than once (the broker hands out again what a lost worker held); the run store
decides: a run that is going on elsewhere (its heartbeat is fresh) or has ended is left alone. Two workers given
the same queued run at once both start a process, and the store lets one claim it (``Store.start_attempt``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mamabear.status import Status

_children: dict[subprocess.Popen, bool] = {}  # each run's process, and whether it was asked to stop
STOPPED_CODES = (130, -signal.SIGTERM, -signal.SIGINT, -signal.SIGKILL)  # stopped before it started: the sweeper sends it again
_lock = threading.Lock()


def execute(store: Any, home: Path, worker: str, run_id: str) -> str:
    """Run ``run_id`` here if it waits for a worker; what happened, in a few words (the task's result, for its log)."""
    from mamabear.store.liveness import settle_orphans

    run = settle_orphans(store, [store.run(run_id)])[0]
    if run.status != Status.QUEUED or not store.mark_taken(run_id, worker):
        return f"run {run_id} is {run.status}: left alone"  # going on elsewhere, ended, or to be queued again by the sweeper
    log = home / "logs" / f"{run_id}.log"
    started = time.time()
    code = _child(["resume", run_id], log, worker)
    if store.back_at >= started:  # the store did not answer meanwhile: not the run's fault; the sweeper sends it again
        return f"run {run_id} ended with exit code {code} while the store did not answer: {store.run(run_id).status}"
    if store.run(run_id).status == Status.QUEUED and code not in STOPPED_CODES:  # it never started: say why, once
        store.set_status_if(run_id, Status.QUEUED, Status.FAILED, f"worker {worker} could not start it (exit code {code}): {_last_line(log)}")
    return f"run {run_id} ended with exit code {code}: {store.run(run_id).status}"


def execute_step(store: Any, home: Path, worker: str, run_id: str, position: int, attempt: int) -> str:
    """Carry out step ``position`` that attempt ``attempt`` of a mission sent to the pool, unless it was taken (by the
    mission's own attempt or another worker) or that attempt no longer holds the run. This thread beats on the step's
    row while its process lives, starting up included."""
    if not store.claim_step(run_id, position, worker, attempt):
        return f"step {position} of run {run_id} was taken, or its attempt {attempt} is over: left alone"
    log = home / "logs" / f"{run_id}.step{position}.log"
    code = _child(["step", run_id, str(position), str(attempt)], log, worker, beat=lambda: store.beat_step(run_id, position, worker))
    row = store.task(run_id, position)
    if row is not None and row.status == Status.RUNNING and row.worker == worker:  # it ended without settling its row
        # Interrupted, not failed: the mission's attempt carries it out itself (it may work there, as on one machine).
        why = "was stopped" if code in STOPPED_CODES else f"could not be carried out on worker {worker} (exit code {code}: {_last_line(log)})"
        store.set_task_status_if(run_id, position, Status.RUNNING, Status.INTERRUPTED, why)
    return f"step {position} of run {run_id} ended with exit code {code}"


def _child(args: list[str], log: Path, worker: str, beat: Any = None) -> int:
    """`mamabear ARGS` as a process of its own, its output in ``log``; its exit code. ``beat()`` is called every few
    seconds while it runs."""
    from mamabear.engine.stopping import HEARTBEAT_S

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "mamabear", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, "MAMABEAR_WORKER": worker, "MAMABEAR_WORKER_PID": str(os.getpid()), "NO_COLOR": "1"},
            close_fds=True,
            start_new_session=True,  # a Ctrl-C at the worker's terminal is the worker's; its runs hear of it from it, once
        )
    with _lock:
        _children[child] = False
    try:
        while True:
            try:
                return child.wait(timeout=HEARTBEAT_S if beat is not None else None)
            except subprocess.TimeoutExpired:
                try:
                    beat()
                except Exception:  # noqa: BLE001 - a store that cannot be written now: beat again later
                    pass
    finally:
        with _lock:
            _children.pop(child, None)


def _last_line(log: Path) -> str:
    return (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]


def busy() -> int:
    """How many runs this worker works on now."""
    with _lock:
        return sum(child.poll() is None for child in _children)


def stop_children() -> None:
    """The worker is shutting down: each run it holds stops as on Ctrl-C (checkpointed, interrupted); another worker
    continues it."""
    with _lock:
        asked = [child for child, stopping in _children.items() if not stopping]
        for child in asked:
            _children[child] = True  # once: a second SIGTERM would make it exit at once, unrecorded
    for child in asked:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)


def die_with_worker() -> None:
    """In a run a worker started: stop (as on SIGTERM, once) when the worker process ends, so no run goes on unseen
    after its worker is gone. (Not the kernel's parent-death signal: it comes again as each of the worker's threads
    ends, and a second SIGTERM makes a run exit at once, unrecorded.)"""
    parent = os.environ.get("MAMABEAR_WORKER_PID")
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="mamabear-worker-watch", daemon=True).start()
