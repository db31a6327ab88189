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
from typing import Any

from mamabear.status import Status

SWEEP_S = 5.0
MAX_ATTEMPTS = 10  # a run lost this many times is left interrupted (`mamabear resume` continues it by hand)

log = logging.getLogger("mamabear.workers")


def sweep(store: Any, send: Any) -> list[str]:
    """Queue again the queued runs that were lost; their ids."""
    from mamabear.store.liveness import settle_orphans

    settle_orphans(store, store.list_runs(limit=1000, status=Status.RUNNING))
    sent = []
    for run in store.list_runs(limit=1000, status=Status.INTERRUPTED):
        queue = (run.options or {}).get("queue")
        if queue and (run.attempt or 0) < MAX_ATTEMPTS and store.requeue(run.id):
            send(run.id, queue)
            sent.append(run.id)
            log.warning("run %s was lost (%s); queued again on %s", run.id, run.error, queue)
    return sent


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
