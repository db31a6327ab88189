"""A store that stops answering mid-run (PostgreSQL restarted, its connection cut): every store call waits for it.

A write that fails for that reason is not lost and not skipped: the call (one transaction) is tried again with
backoff until the store answers or ``wait_s()`` has passed, and the caller waits meanwhile. The run's model calls
wait with it (each one beats in the store first), so nothing is done that is not recorded. Past the wait, the
call raises StoreUnavailable: the run ends interrupted and the pool's sweeper queues it again.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from mamabear.errors import StoreUnavailable

STORE_WAIT_S = 120.0  # MAMABEAR_STORE_WAIT_S overrides it; 0 fails at once
BACKOFF_CAP_S = 5.0

log = logging.getLogger("mamabear.store")


def wait_s() -> float:
    try:
        return max(0.0, float(os.environ.get("MAMABEAR_STORE_WAIT_S") or STORE_WAIT_S))
    except ValueError:
        return STORE_WAIT_S


def lost_connection(exc: BaseException) -> bool:
    """The server did not answer (refused, cut, shutting down): not a fault of the statement, nor of the disk."""
    if not isinstance(exc, sa.exc.DBAPIError) or isinstance(exc, sa.exc.IntegrityError):
        return False
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) and any(
        w in text for w in ("connection", "server closed", "terminating", "shutting down", "starting up", "could not connect", "no such file or directory")
    )


def waiting(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the Store, waiting out a store that does not answer (the store's ``back_at`` says when it came back)."""

    @functools.wraps(method)
    def call(store: Any, *args: Any, **kwargs: Any) -> Any:
        if store.engine.dialect.name == "sqlite":  # a file: a fault there is the disk's (StorageError), not an outage
            return method(store, *args, **kwargs)
        started, pause, failures = time.monotonic(), 0.25, 0
        while True:
            try:
                result = method(store, *args, **kwargs)
            except sa.exc.DBAPIError as exc:
                if not lost_connection(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= wait_s():
                    where = store.engine.url.render_as_string(hide_password=True)
                    first = str(exc.orig).strip().splitlines()[0]
                    raise StoreUnavailable(
                        f"the run store at {where} did not answer for {waited:.0f}s ({first}); what is stored is kept, and the run can be resumed."
                    ) from exc
                failures += 1
                if failures == 1:
                    log.warning("the run store does not answer (%s); waiting for it (up to %.0fs)", type(exc.orig).__name__, wait_s())
                time.sleep(pause)
                pause = min(pause * 2, BACKOFF_CAP_S)
                continue
            if failures:
                store.back_at = time.time()
                log.warning("the run store answers again after %.0fs", time.monotonic() - started)
            return result

    return call


def every_call_waits(cls: type) -> type:
    """The Store class with each of its public methods waiting out an outage."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_") and name not in ("open", "tx", "migrate"):
            setattr(cls, name, waiting(value))
    return cls
