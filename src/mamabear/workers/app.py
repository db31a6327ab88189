"""The Celery app of mamabear's workers, configured for hours-long work that must survive a worker's loss."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mamabear.config.redact import shown_url
from mamabear.errors import UsageError

EXECUTE = "mamabear.execute"  # start or continue run ID
EXECUTE_STEP = "mamabear.step"  # carry out step POSITION a mission (run ID) sent to the pool
DEFAULT_QUEUE = "default"
# How long the broker waits for a delivered message's ack before it hands the message to another worker. A worker
# acks when its run ends (acks_late), so this is longer than the longest run; a lost worker's run is noticed sooner,
# by its heartbeat (sweeper.py), and a message handed out again for a run that is going on is dropped (execute.py).
VISIBILITY_TIMEOUT_S = 24 * 3600


def broker_url(env: Mapping[str, str]) -> str:
    url = env.get("MAMABEAR_BROKER_URL") or ""
    if not url:
        raise UsageError("no worker pool is configured: set MAMABEAR_BROKER_URL to the Redis broker (redis://:PASSWORD@HOST:6379/0) the workers use.")
    if not url.startswith(("redis://", "rediss://", "redis+socket://")):
        raise UsageError(f"MAMABEAR_BROKER_URL '{_where(url)}' is not a redis:// URL; the workers use a Redis broker.")
    return url


def worker_broker_url(env: Mapping[str, str]) -> str:
    """The broker a worker takes runs from: one with a password, since anyone who can reach a passwordless Redis can
    take the pool's runs or send it their own (MAMABEAR_BROKER_INSECURE=1 allows one, for a broker only you can reach)."""
    from urllib.parse import urlsplit

    url = broker_url(env)
    if not urlsplit(url).password and env.get("MAMABEAR_BROKER_INSECURE") != "1":
        raise UsageError(
            f"the broker at {_where(url)} has no password, so anyone who reaches it can take this pool's runs; give it one "
            "(redis://:PASSWORD@HOST:6379/0, Redis's requirepass) or set MAMABEAR_BROKER_INSECURE=1 for a broker only you can reach."
        )
    return url


def _where(url: str) -> str:
    """The broker for messages: its host, port and database, its password masked."""
    return shown_url(url).split("://", 1)[-1]


def make_app(url: str) -> Any:
    from celery import Celery

    app = Celery("mamabear", broker=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a message is acked when its run ends, not when it is taken
        task_reject_on_worker_lost=True,  # a pool process that dies hands its message back at once
        worker_prefetch_multiplier=1,  # a worker takes no more runs than it has room for
        task_default_queue=DEFAULT_QUEUE,
        task_ignore_result=True,  # results live in the run store
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": int(os.environ.get("MAMABEAR_VISIBILITY_TIMEOUT_S") or VISIBILITY_TIMEOUT_S)},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=True,  # `mamabear workers` asks them who is up and what each runs
    )
    return app


def reachable(app: Any) -> None:
    """A UsageError naming the broker when it cannot be reached (before a run is queued, so none is left behind)."""
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0.2, timeout=5)
    except Exception as exc:  # noqa: BLE001 - kombu raises the transport's own errors
        raise UsageError(
            f"cannot reach the broker at {_where(str(app.conf.broker_url))} ({type(exc).__name__}); check MAMABEAR_BROKER_URL and that Redis is up."
        ) from exc


def connected(env: Mapping[str, str]) -> Any:
    """The app on the configured broker, once the broker answers (a UsageError otherwise)."""
    app = make_app(broker_url(env))
    reachable(app)
    return app


FIRST, LATER = 0, 3  # kombu's Redis priorities (0 is served first): a run queued again goes ahead of newer ones


def send(app: Any, run_id: str, queue: str, again: bool = False) -> None:
    """Start or continue ``run_id`` on ``queue``; ``again``: it was lost, or its message was, and goes first."""
    app.send_task(
        EXECUTE,
        args=[run_id],
        queue=queue,
        priority=FIRST if again else LATER,
        retry=True,
        retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


def send_or_fail(app: Any, store: Any, run_id: str, queue: str) -> None:
    """Send queued run ``run_id`` to the pool; a run the broker does not take is marked failed (resumable), and said."""
    from mamabear.errors import UsageError
    from mamabear.status import Status

    try:
        send(app, run_id, queue)
    except Exception as exc:  # noqa: BLE001 - kombu raises the transport's own errors
        store.set_status_if(run_id, Status.QUEUED, Status.FAILED, f"the broker did not take it ({type(exc).__name__})")
        raise UsageError(f"the broker did not take run {run_id} ({type(exc).__name__}); it is marked failed, `mamabear resume {run_id}` continues it.") from exc


def send_step(app: Any, run_id: str, position: int, attempt: int, queue: str) -> None:
    app.send_task(EXECUTE_STEP, args=[run_id, position, attempt], queue=queue, retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2})


def host_queue(host: str) -> str:
    """The queue every worker on machine ``host`` takes from besides its own: for steps that must stay on it (their
    run works in a local sandbox, whose files are on that machine)."""
    return f"mamabear.host.{host}"


def mission_pool(env: Mapping[str, str], queue: str | None, sandbox_backend: str | None) -> Any:
    """Where a mission run by a worker sends its independent items (mission.fanout.Pool); None when it does not run on
    a worker. With a local sandbox the items stay on this machine (any of its workers); otherwise any worker of the
    run's queue takes them."""
    from mamabear.mission.fanout import Pool
    from mamabear.store.liveness import this_host

    worker = env.get("MAMABEAR_WORKER")
    if not worker or not queue:
        return None
    app = make_app(broker_url(env))
    target = host_queue(this_host()) if sandbox_backend == "local" else queue
    return Pool(send=lambda run_id, position, attempt: send_step(app, run_id, position, attempt, target), worker=worker)
