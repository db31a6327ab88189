"""`mamabear worker`: a Celery worker that runs queued runs, with the sweeper for lost ones."""

from __future__ import annotations

import socket
from typing import Any

from mamabear.workers.app import EXECUTE, EXECUTE_STEP, broker_url, host_queue, make_app, queue_depth, reachable, send


def serve(services: Any, name: str | None, concurrency: int, queues: list[str], loglevel: str = "INFO") -> None:
    from celery import signals

    from mamabear.telemetry.meters import pool_meters
    from mamabear.workers.execute import busy, execute, execute_step, stop_children
    from mamabear.workers.sweeper import Sweeper

    url = broker_url(services.settings.env)
    app = make_app(url)
    reachable(app)
    store, home = services.store, services.settings.home
    hostname = f"{name or 'mamabear'}@{socket.gethostname()}"

    @app.task(name=EXECUTE, bind=True)
    def run_task(self: Any, run_id: str) -> str:
        return execute(store, home, self.request.hostname or hostname, run_id)

    @app.task(name=EXECUTE_STEP, bind=True)
    def step_task(self: Any, run_id: str, position: int, attempt: int) -> str:
        return execute_step(store, home, self.request.hostname or hostname, run_id, position, attempt)

    sweeper = Sweeper(store, lambda run_id, queue: send(app, run_id, queue))
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
