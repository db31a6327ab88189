"""`mamabear worker`: a Celery worker that runs queued runs, with the sweeper for lost ones."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mamabear.compat.kombu import holds, queue_depth
from mamabear.errors import NotFound, StorageError
from mamabear.workers.app import EXECUTE, EXECUTE_STEP, host_queue, make_app, reachable, send, worker_broker_url

log = logging.getLogger("mamabear.workers")
HANDBACK_S = 5.0  # a message this worker cannot act on now goes back to the broker after this pause (another may)


def serve(services: Any, name: str | None, concurrency: int, queues: list[str], loglevel: str = "INFO") -> None:
    from celery import signals

    from mamabear.telemetry.meters import pool_meters
    from mamabear.workers.execute import busy, execute, execute_step, stop_children
    from mamabear.workers.sweeper import Sweeper

    url = worker_broker_url(services.settings.env)
    app = make_app(url)
    reachable(app)
    store, home = services.store, services.settings.home
    hostname = f"{name or 'mamabear'}@{socket.gethostname()}"

    @app.task(name=EXECUTE, bind=True)
    def run_task(self: Any, run_id: str) -> str:
        with handed_back(run_id, store):
            return execute(store, home, self.request.hostname or hostname, run_id)

    @app.task(name=EXECUTE_STEP, bind=True)
    def step_task(self: Any, run_id: str, position: int, attempt: int) -> str:
        with handed_back(run_id, store):
            return execute_step(store, home, self.request.hostname or hostname, run_id, position, attempt)

    sweeper = Sweeper(store, lambda run_id, queue: send(app, run_id, queue, again=True), lambda run_id, queue: holds(url, [queue], run_id))
    meters = pool_meters(services.settings.env, lambda: queue_depth(url, queues), busy, hostname)  # OTEL_* set: gauges for the dashboard

    @signals.worker_ready.connect(weak=False)
    def _ready(**_: Any) -> None:
        sweeper.start()

    @signals.worker_shutting_down.connect(weak=False)
    def _shutting_down(**_: Any) -> None:
        sweeper.stopped.set()
        stop_children()
        if meters is not None:
            meters.shutdown()

    # The threads pool: a task only starts a run's process and waits for it, so threads are enough, and each run is
    # a child of this process (it ends with it: execute.die_with_worker).
    taken = [*queues, host_queue(socket.gethostname())]  # and the steps that must stay on this machine
    argv = ["worker", f"--hostname={hostname}", f"--concurrency={concurrency}", "--pool=threads", f"--queues={','.join(taken)}"]
    app.worker_main([*argv, f"--loglevel={loglevel}", "--without-mingle", "--without-gossip"])


@contextmanager
def handed_back(run_id: str, store: Any) -> Iterator[None]:
    """No message decides a run's fate alone: one this worker cannot act on (its store does not answer, or does not
    know the run) is rejected back to the broker, not acked and dropped."""
    from celery.exceptions import Reject

    try:
        yield
    except (NotFound, StorageError) as exc:
        where = store.engine.url.render_as_string(hide_password=True)
        why = (
            f"run {run_id} is not in this worker's store at {where}: is this worker pointed at the pool's store?" if isinstance(exc, NotFound) else exc.message
        )
        log.warning("%s; its message goes back to the broker", why)
        time.sleep(HANDBACK_S)
        raise Reject(why, requeue=True) from exc
