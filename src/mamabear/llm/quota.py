"""Client-side rate limits per provider (requests and tokens per minute), shared by every run on the machine, or,
with a worker pool, by every worker.

Each limited provider has one row in a small SQLite file (or one hash in Redis, the pool's broker): when its next
request may go (requests are evenly spaced, a GCRA bucket of capacity one) and how full its token bucket is. Every
reservation is one transaction (SQLite's ``BEGIN IMMEDIATE``; Redis' WATCH/MULTI, tried again when another process
wrote first), so two processes can never both take the last slot, and a run waits for its turn instead of
collecting HTTP 429s. Across machines, the bookings are stamped by each machine's clock: keep them in step (NTP).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from mamabear.config.models import Quota
from mamabear.errors import ConfigError, UsageError

__all__ = ["Quota", "QuotaBook"]

BUSY_TIMEOUT_S = 5.0  # SQLite's own wait for the write lock, per try
LOCK_TRIES = 12  # tries of BUSY_TIMEOUT_S each before giving up on a lock someone never releases
REDIS_WAIT_S = 60.0  # a quota Redis that stops answering mid-run is waited for this long, then each process books alone
SLACK_S = 1e-6  # a wait this short is float rounding, not a limit: it would only cost another round trip

_SCHEMA = "CREATE TABLE IF NOT EXISTS buckets (provider TEXT PRIMARY KEY, next_at REAL, level REAL, updated REAL)"
_SAVE = (
    "INSERT INTO buckets (provider, next_at, level, updated) VALUES (?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE "
    "SET next_at = excluded.next_at, level = excluded.level, updated = excluded.updated"
)

T = TypeVar("T")


class QuotaBook:
    """Token buckets per provider, shared by every process through one SQLite file."""

    def __init__(self, path: Path | str, quotas: Mapping[str, Quota], clock: Callable[[], float] = time.time) -> None:
        """``path``: the SQLite file, or a redis:// URL (the worker pool's broker) to share the buckets across machines."""
        for name, quota in quotas.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"quota for provider {name!r}: a quota needs the provider's name.")
            for field, value in (("rpm", quota.rpm), ("tpm", quota.tpm)):
                # `not value > 0` also refuses NaN; infinity would turn the bucket arithmetic into NaN
                if value is not None and (not value > 0 or value == float("inf")):
                    raise ConfigError(f"quota for '{name}': {field} {value:g} must be a number more than zero (leave it out for no limit).")
        self.url = redis_url(path) if isinstance(path, str) else None
        self.path = Path(path) if self.url is None else Path("redis")
        self.clock = clock
        self._quotas = {name: quota for name, quota in quotas.items() if quota.limited}
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()  # one connection per book, shared by the run's threads
        self._redis: Any = None
        self._down_since: float | None = None  # when the quota Redis stopped answering (mid-run)
        self._local: QuotaBook | None = None  # the buckets of this process alone, once Redis stayed away too long

    def check(self) -> None:
        """A UsageError now, before a run starts, when the buckets cannot be reached (Redis down)."""
        if self.url is not None and self._quotas:
            self._redis_transaction(next(iter(self._quotas)), lambda buckets: None)

    def limits(self, provider: str) -> Quota | None:
        """The provider's quota, or None when it is not limited."""
        return self._quotas.get(provider)

    def reserve(self, provider: str, tokens: int) -> float:
        """Book one request of about `tokens` tokens now and return 0.0, or book nothing and return the seconds to wait before trying again."""
        return self._reserve(provider, tokens)[0]

    def settle(self, provider: str, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage is known (actual may be more or less than estimated; the bucket may go into debt)."""
        quota = self._quotas.get(provider)
        if quota is None or quota.tpm is None or estimated == actual:
            return
        tpm = quota.tpm

        def correct(conn: _Buckets) -> None:
            now = self.clock()
            next_at, level, updated = conn.load(provider, now)
            level = min(tpm, _refilled(quota, level, updated, now) + (estimated - actual))
            conn.save(provider, next_at, level, now)

        try:
            self._transaction(provider, correct)
        except UsageError:
            if self.url is None:
                raise
            # Redis failed after the call was made and paid: the bucket stays at its estimate rather than fail the call.

    def acquire(self, provider: str, tokens: int, wait: Callable[[float, str], None]) -> float:
        """reserve() until booked; between tries calls wait(seconds, reason) — reason is one human sentence fragment such as
        "openai quota: 60 requests/min" or "openai quota: 100,000 tokens/min" naming the limit that binds. Returns total seconds waited."""
        waited = 0.0
        while True:
            seconds, reason = self._reserve(provider, tokens)
            if seconds == 0.0:
                return waited
            # Another process may take the slot while we wait, so each wake-up books afresh.
            wait(seconds, reason)
            waited += seconds

    # ------------------------------------------------------------ buckets

    def _reserve(self, provider: str, tokens: int) -> tuple[float, str]:
        quota = self._quotas.get(provider)
        if quota is None:
            return 0.0, ""
        if self._local is not None:
            return self._local._reserve(provider, tokens)
        if self.url is None:
            return self._booked(provider, quota, tokens)
        try:
            booked = self._booked(provider, quota, tokens)
        except UsageError:  # the quota Redis went away mid-run: wait for it (bounded), then book here alone
            return self._without_redis(provider, tokens)
        self._down_since = None
        return booked

    def _without_redis(self, provider: str, tokens: int) -> tuple[float, str]:
        """A quota Redis that stopped answering: the call waits for it, up to REDIS_WAIT_S, then the run books against
        buckets of its own process (the limits still hold for it, not across machines) rather than fail."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        down = now - self._down_since
        if down < REDIS_WAIT_S:
            return min(2.0, REDIS_WAIT_S - down) + SLACK_S, f"quota buckets in Redis (unreachable for {down:.0f}s)"
        import tempfile

        self._local = QuotaBook(Path(tempfile.mkdtemp(prefix="mamabear-quota-")) / "quotas.db", self._quotas, self.clock)
        return 0.001, f"quota buckets in Redis (unreachable for {down:.0f}s): booking in this process alone from now on"

    def _booked(self, provider: str, quota: Quota, tokens: int) -> tuple[float, str]:
        tokens = max(0, tokens)

        def book(conn: _Buckets) -> tuple[float, str]:
            # The clock is read inside the write lock, so bookings are stamped in the order they are made.
            now = self.clock()
            next_at, level, updated = conn.load(provider, now)
            request_wait = token_wait = 0.0
            if quota.rpm is not None:
                interval = 60.0 / quota.rpm
                # Never further out than one interval: undoes a clock stepped back and a stricter quota of an earlier run.
                next_at = min(next_at, now + interval)
                request_wait = max(0.0, next_at - now)
            if quota.tpm is not None:
                level = _refilled(quota, level, updated, now)
                updated = now
                token_wait = max(0.0, (min(tokens, quota.tpm) - level) / (quota.tpm / 60.0))
            if request_wait <= SLACK_S and token_wait <= SLACK_S:
                if quota.rpm is not None:
                    next_at = max(now, next_at) + 60.0 / quota.rpm
                if quota.tpm is not None and level is not None:  # refilled above: a number whenever tpm is set
                    level -= tokens
                conn.save(provider, next_at, level, updated)
                return 0.0, ""
            # Saved even when nothing is booked: the refill is then measured from this clock reading (in Redis it is
            # not: the refill is linear and capped, so it comes out the same, and a write would break others' WATCH).
            conn.save(provider, next_at, level, updated, booked=False)
            if token_wait > request_wait:
                return token_wait, f"{provider} quota: {_num(quota.tpm or 0)} tokens/min"
            return request_wait, f"{provider} quota: {_num(quota.rpm or 0)} requests/min"

        return self._transaction(provider, book)

    # ------------------------------------------------------------ the file

    def _transaction(self, provider: str, work: Callable[[_Buckets], T]) -> T:
        if self.url is not None:
            return self._redis_transaction(provider, work)
        for attempt in range(LOCK_TRIES):
            with self._lock:
                conn = self._connect()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(_SqliteBuckets(conn))
                        conn.execute("COMMIT")
                        return result
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                except sqlite3.OperationalError as exc:
                    if not _locked(exc):
                        raise self._unusable(exc) from exc
                except sqlite3.DatabaseError as exc:
                    raise self._unusable(exc) from exc
            # SQLite already waited BUSY_TIMEOUT_S; a short random pause keeps waiting processes from retrying in step.
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise UsageError(f"the quota file {self.path} stayed locked for over a minute; another mamabear process may be stuck, so stop it or delete the file.")

    def _connect(self) -> sqlite3.Connection:
        # A forked child must not share its parent's connection (SQLite locks are per process).
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the folder for the quota file {self.path} ({exc.strerror or exc}).") from exc
        import tenacity

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # With WAL, NORMAL loses at most the last bookings on a power cut and never corrupts; FULL would fsync every booking.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
            except sqlite3.DatabaseError:
                conn.close()
                raise
            return conn

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, sqlite3.OperationalError) and _locked(exc)),
            stop=tenacity.stop_after_attempt(LOCK_TRIES),
            wait=tenacity.wait_incrementing(0.01, 0.01) + tenacity.wait_random(0, 0.04),  # waiting processes do not retry in step
            reraise=True,
        )
        try:
            conn = retrying(connect)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _locked(exc):
                raise UsageError(
                    f"the quota file {self.path} stayed locked for over a minute; another mamabear process may be stuck, so stop it or delete the file."
                ) from exc
            raise self._unusable(exc) from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _unusable(self, exc: sqlite3.DatabaseError) -> UsageError:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        return UsageError(f"the quota file {self.path} is unreadable ({exc}); delete it and the next run starts a fresh one.")

    def _redis_transaction(self, provider: str, work: Callable[[_Buckets], T]) -> T:
        import redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(self.url or "", socket_timeout=10)
        key = f"mamabear:quota:{provider}"
        for attempt in range(LOCK_TRIES * 20):
            try:
                with self._redis.pipeline() as pipe:
                    pipe.watch(key)
                    buckets = _RedisBuckets(pipe, key)
                    result = work(buckets)
                    if not buckets.saved:  # nothing booked: nothing to write
                        pipe.unwatch()
                        return result
                    pipe.multi()
                    pipe.hset(key, mapping=buckets.saved)
                    pipe.expire(key, 3600)  # a provider no one books for an hour starts afresh (a full bucket)
                    pipe.execute()
                    return result
            except redis.WatchError:  # another process booked first: book again on what it left
                time.sleep(random.uniform(0.001, 0.01) * min(attempt + 1, 10))
            except redis.RedisError as exc:
                raise UsageError(f"the quota buckets in Redis cannot be used ({type(exc).__name__}: {exc}); check MAMABEAR_BROKER_URL.") from exc
        raise UsageError("the quota buckets in Redis were contended for too long; too many processes book one provider at once.")


def redis_url(path: str) -> str | None:
    """The redis-py URL of a broker URL (kombu's redis+socket:// is a unix socket), or None for anything else."""
    if path.startswith(("redis://", "rediss://", "unix://")):
        return path
    if path.startswith("redis+socket://"):
        return "unix://" + path.removeprefix("redis+socket://").replace("virtual_host=", "db=")
    return None


class _Buckets:
    """One provider's bucket state, inside a transaction: ``load`` then ``save``."""

    def load(self, provider: str, now: float) -> tuple[float, float | None, float]:
        """next_at, level (None = full) and updated; a fresh provider may go at once with a full bucket."""
        raise NotImplementedError

    def save(self, provider: str, next_at: float, level: float | None, updated: float, booked: bool = True) -> None:
        raise NotImplementedError


class _SqliteBuckets(_Buckets):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def load(self, provider: str, now: float) -> tuple[float, float | None, float]:
        row = self.conn.execute("SELECT next_at, level, updated FROM buckets WHERE provider = ?", (provider,)).fetchone()
        if row is None:
            return 0.0, None, now
        next_at, level, updated = row
        return (0.0 if next_at is None else next_at), level, (now if updated is None else updated)

    def save(self, provider: str, next_at: float, level: float | None, updated: float, booked: bool = True) -> None:
        self.conn.execute(_SAVE, (provider, next_at, level, updated))


class _RedisBuckets(_Buckets):
    def __init__(self, pipe: Any, key: str) -> None:
        self.pipe, self.key = pipe, key
        self.saved: dict[str, str] = {}

    def load(self, provider: str, now: float) -> tuple[float, float | None, float]:
        next_at, level, updated = self.pipe.hmget(self.key, "next_at", "level", "updated")  # read under WATCH
        if next_at is None:
            return 0.0, None, now
        return float(next_at), (float(level) if level else None), float(updated) if updated else now

    def save(self, provider: str, next_at: float, level: float | None, updated: float, booked: bool = True) -> None:
        if booked:
            self.saved = {"next_at": repr(next_at), "level": "" if level is None else repr(level), "updated": repr(updated)}


def _refilled(quota: Quota, level: float | None, updated: float, now: float) -> float:
    """The token bucket's level now: it refills tpm/60 a second up to tpm, and a clock stepped back refills nothing."""
    tpm = quota.tpm or 0.0
    if level is None:
        return tpm
    return min(tpm, level + max(0.0, now - updated) * tpm / 60.0)


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _num(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"
