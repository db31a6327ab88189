"""Each worker looks, every few seconds, for queued runs whose worker was lost, and queues them again.

A run's process beats in the store every 2 s. A run whose heartbeat is older than ``stale_after_s()`` (60 s by
default) on another machine, or whose process has ended on this one, is settled interrupted (``settle_orphans``);
an interrupted queued run goes back to the queue once (``Store.requeue`` is one conditional update, so of the
workers that see it, one sends it). So a lost worker's run continues elsewhere within the stale time plus one
sweep; the tasks it had done are not run again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from mamabear.status import Status

SWEEP_S = 5.0
MAX_ATTEMPTS = 10  # a run lost this many times is left interrupted (`mamabear resume` continues it by hand)

log = logging.getLogger("mamabear.workers")


def sweep(store: Any, send: Any) -> list[str]:
    """Queue again the queued runs that were lost; their ids."""
    from mamabear.store.liveness import settle_orphans, stale_after_s

    settle_orphans(store, store.runs_with_status(Status.RUNNING))
    sent = []
    for run in store.runs_with_status(Status.INTERRUPTED):
        queue = (run.options or {}).get("queue")
        if queue and (run.attempt or 0) < MAX_ATTEMPTS and store.requeue(run.id):
            sent += _send(store, send, run.id, queue, f"was lost ({run.error})")
    for run in store.resend_taken(time.time() - stale_after_s()):  # taken by a worker that was lost before starting it
        sent += _send(store, send, run.id, (run.options or {}).get("queue") or "default", f"was taken by {run.worker} and not started")
    return sent


def _send(store: Any, send: Any, run_id: str, queue: str, why: str) -> list[str]:
    try:
        send(run_id, queue)
    except Exception:  # noqa: BLE001 - the broker is down: the next sweep tries again
        store.set_status_if(run_id, Status.QUEUED, Status.INTERRUPTED, f"could not be queued again: the broker did not take it ({why})")
        raise
    log.warning("run %s %s; queued again on %s", run_id, why, queue)
    return [run_id]


class Sweeper(threading.Thread):
    def __init__(self, store: Any, send: Any) -> None:
        super().__init__(name="mamabear-sweeper", daemon=True)
        self.store, self.send = store, send
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SWEEP_S):
            try:
                sweep(self.store, self.send)
            except Exception:  # noqa: BLE001 - a store or broker that is down now: try again at the next sweep
                log.exception("the sweep for lost runs failed; trying again in %.0fs", SWEEP_S)
