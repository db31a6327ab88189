"""Each worker looks, every few seconds, for queued runs whose worker was lost, and queues them again.

A run's process beats in the store every 2 s. A run whose heartbeat is older than ``stale_after_s()`` (20 s by
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
UNSENT_S = 30.0  # a queued run no worker took whose message the broker no longer holds is sent again after this long
MAX_ATTEMPTS = 10  # a run lost this many times is left interrupted (`mamabear resume` continues it by hand)

log = logging.getLogger("mamabear.workers")


def sweep(store: Any, send: Any, holds: Any = None, missing: dict[str, float] | None = None) -> list[str]:
    """Queue again the queued runs that were lost; their ids. ``holds(run_id, queue)``: whether the broker still has
    a message for the run; ``missing``: since when each untaken queued run's message was first seen gone."""
    from mamabear.store.liveness import settle_orphans, stale_after_s

    settle_orphans(store, store.runs_with_status(Status.RUNNING))
    sent = []
    for run in store.runs_with_status(Status.INTERRUPTED):
        queue = (run.options or {}).get("queue")
        if queue and (run.attempt or 0) < MAX_ATTEMPTS and store.requeue(run.id):
            sent += _send(store, send, run.id, queue, f"was lost ({run.error})")
    for run in store.resend_taken(time.time() - stale_after_s()):  # taken by a worker that was lost before starting it
        sent += _send(store, send, run.id, (run.options or {}).get("queue") or "default", f"was taken by {run.worker} and not started")
    if holds is not None and missing is not None:
        sent += _resend_unsent(store, send, holds, missing)
    return sent


def _resend_unsent(store: Any, send: Any, holds: Any, missing: dict[str, float]) -> list[str]:
    """A queued run that no worker took and whose message the broker no longer holds (a Redis without persistence
    restarted, a message dropped) is sent again once it has been missing for UNSENT_S: the broker may be between
    handing a message out and noting it."""
    now, sent, seen = time.time(), [], set()
    for run in store.runs_with_status(Status.QUEUED):
        queue = (run.options or {}).get("queue")
        if not queue or run.heartbeat_at is not None:
            continue  # not the pool's, or taken (resend_taken looks after it)
        seen.add(run.id)
        if holds(run.id, queue):
            missing.pop(run.id, None)
        elif now - missing.setdefault(run.id, now) >= UNSENT_S:
            missing.pop(run.id)
            sent += _send(store, send, run.id, queue, "had no message in the broker (it was lost)")
    for gone in set(missing) - seen:
        missing.pop(gone)
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
    def __init__(self, store: Any, send: Any, holds: Any = None) -> None:
        super().__init__(name="mamabear-sweeper", daemon=True)
        self.store, self.send, self.holds = store, send, holds
        self.missing: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SWEEP_S):
            try:
                sweep(self.store, self.send, self.holds, self.missing)
            except Exception:  # noqa: BLE001 - a store or broker that is down now: try again at the next sweep
                log.exception("the sweep for lost runs failed; trying again in %.0fs", SWEEP_S)
