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

_children: set[subprocess.Popen] = set()
_lock = threading.Lock()


def execute(store: Any, home: Path, worker: str, run_id: str) -> str:
    """Run ``run_id`` here if it waits for a worker; what happened, in a few words (the task's result, for its log)."""
    from mamabear.store.liveness import settle_orphans

    run = settle_orphans(store, [store.run(run_id)])[0]
    if run.status != Status.QUEUED:
        return f"run {run_id} is {run.status}: left alone"  # going on elsewhere, ended, or to be queued again by the sweeper
    log = home / "logs" / f"{run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "mamabear", "resume", run_id],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, "MAMABEAR_WORKER": worker, "MAMABEAR_WORKER_PID": str(os.getpid()), "NO_COLOR": "1"},
            close_fds=True,
        )
    with _lock:
        _children.add(child)
    try:
        code = child.wait()
    finally:
        with _lock:
            _children.discard(child)
    return f"run {run_id} ended with exit code {code}: {store.run(run_id).status}"


def stop_children() -> None:
    """The worker is shutting down: each run it holds stops as on Ctrl-C (checkpointed, interrupted); another worker
    continues it."""
    with _lock:
        children = list(_children)
    for child in children:
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
