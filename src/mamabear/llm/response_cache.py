"""The response cache's storage: identical model requests are answered from here instead of the provider.

A request is keyed by :func:`request_key` (sha256 of its canonical JSON); the reply is stored as JSON text.
SQLite at ``$MAMABEAR_HOME/cache.db`` by default (WAL, so several processes can share it), Redis when given a
``redis://``, ``rediss://`` or ``unix://`` URL (shared by a team or a CI fleet). Every failure a user can fix
(an unreachable server, a damaged file) is a :class:`~mamabear.errors.UsageError` of one sentence.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from mamabear.config.redact import shown_url
from mamabear.errors import UsageError

REDIS_PREFIX = "mamabear:cache:"
REDIS_SCHEMES = ("redis", "rediss", "unix")
SQLITE_BUSY_TIMEOUT_MS = 30_000  # as the run store: a writer waits its turn rather than failing
PURGE_EVERY_S = 60.0  # expired rows are deleted by a put at most this often (per process)
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_TIMEOUT_S = 5.0
REDIS_RETRIES = 2  # after the first try: a blackholed host fails the opening PING in about 3 x 2 s


def request_key(payload: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of a request (sorted keys, no whitespace, non-JSON values via str)."""
    text = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """What json.dumps(sort_keys=True) alone gets wrong: non-string keys (mixed types cannot be sorted)
    and sets (their iteration order changes from one process to the next)."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"), default=str))
    return value


def _dumps(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(text: str | bytes) -> dict | None:
    """A stored value; one not written by us is a miss (the next put replaces it)."""
    try:
        return json.loads(text)
    except ValueError:
        return None


class ResponseCache(Protocol):
    location: str  # where it is, for messages; never contains a password

    def get(self, key: str) -> dict | None: ...  # None when absent or expired

    def put(self, key: str, value: dict, ttl_s: float | None) -> None: ...  # None ttl: keep forever

    def clear(self) -> int: ...  # entries removed

    def close(self) -> None: ...


def _check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not ttl_s > 0:  # also rejects NaN
        raise ValueError(f"ttl_s must be a positive number of seconds or None (keep forever), not {ttl_s!r}")


# ------------------------------------------------------------------ SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    hits INTEGER NOT NULL DEFAULT 0
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS responses_expires_at ON responses (expires_at)"


class SqliteCache:
    """One file shared by every process on the machine; each instance holds one connection (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.location = str(self.path)
        self._lock = threading.Lock()
        self._next_purge = 0.0  # the first put of a process purges
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the directory of the response cache {self.location} ({exc.strerror or exc}); "
                f"fix MAMABEAR_CACHE_URL or MAMABEAR_HOME, or pass --no-cache."
            ) from exc
        self._conn: sqlite3.Connection | None = None
        try:
            # Autocommit: every statement is its own short transaction, so a writer takes the write lock at
            # once (and waits for it up to the busy timeout) instead of upgrading a read and failing.
            self._conn = sqlite3.connect(self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            self._setup()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise self._damaged(exc) from exc

    def _setup(self) -> None:
        import tenacity

        conn = self._conn
        assert conn is not None

        def create() -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across crashes of the process, cheap commits
            conn.execute(_SCHEMA)
            conn.execute(_INDEX)

        # two processes creating the file at once: the loser tries again
        locked = tenacity.retry_if_exception(lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower())
        tenacity.Retrying(retry=locked, stop=tenacity.stop_after_attempt(8), wait=tenacity.wait_incrementing(0.05, 0.05), reraise=True)(create)

    def _damaged(self, exc: sqlite3.DatabaseError) -> UsageError:
        return UsageError(
            f"cannot use the response cache {self.location} ({exc}); the file only holds cached model replies and can be deleted safely, or pass --no-cache."
        )

    def _run(self, fn: Any) -> Any:
        if self._conn is None:
            raise RuntimeError(f"the response cache {self.location} is closed")
        with self._lock:
            try:
                return fn(self._conn)
            except sqlite3.DatabaseError as exc:
                raise self._damaged(exc) from exc

    def get(self, key: str) -> dict | None:
        def read(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM responses WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)", (key, time.time())).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE responses SET hits = hits + 1 WHERE key = ?", (key,))
            return row[0]

        text = self._run(read)
        if text is None:
            return None
        return _loads(text)

    def put(self, key: str, value: dict, ttl_s: float | None) -> None:
        _check_ttl(ttl_s)
        text = _dumps(value)

        def write(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT INTO responses (key, value, created_at, expires_at, hits) VALUES (?, ?, ?, ?, 0) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, created_at = excluded.created_at, "
                "expires_at = excluded.expires_at, hits = 0",
                (key, text, now, None if ttl_s is None else now + ttl_s),
            )
            if now >= self._next_purge:
                self._next_purge = now + PURGE_EVERY_S
                conn.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))

        self._run(write)

    def clear(self) -> int:
        return self._run(lambda conn: conn.execute("DELETE FROM responses").rowcount)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ------------------------------------------------------------------ Redis


def _secret(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


class RedisCache:
    """Entries are plain string keys under ``mamabear:cache:`` holding JSON text, expired by Redis itself."""

    def __init__(self, url: str) -> None:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self._url = url
        self.location = shown_url(url)
        try:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), REDIS_RETRIES),
            )
        except ValueError as exc:
            raise UsageError(
                f"MAMABEAR_CACHE_URL '{self.location}' is not a usable Redis URL ({self._reason(exc)}); "
                f"use redis://[USER:PASSWORD@]HOST:PORT/DB, rediss://... or unix:///PATH/redis.sock."
            ) from exc
        try:
            self._client.ping()
        except redis.RedisError as exc:
            self.close()
            if isinstance(exc, redis.ConnectionError) and not isinstance(exc, redis.AuthenticationError):
                message = f"cannot reach the response cache at {self.location} ({self._reason(exc)}); start Redis, fix MAMABEAR_CACHE_URL, or pass --no-cache."
            else:
                message = f"cannot use the response cache at {self.location} ({self._reason(exc)}); fix MAMABEAR_CACHE_URL, or pass --no-cache."
            raise UsageError(message) from exc

    def _reason(self, exc: Exception) -> str:
        """redis-py's message, shortened: 'Error 111 connecting to 127.0.0.1:6390. Connection refused.' -> 'Connection refused'."""
        text = str(exc).strip() or type(exc).__name__
        match = re.match(r"Error -?\d+ connecting to \S+?\. (.+)", text)
        if match:
            text = match.group(1)
        secret = _secret(self._url)
        if secret:
            text = text.replace(secret, "***")
        return text.rstrip(".")

    def _call(self, fn: Any) -> Any:
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(exc, redis.AuthenticationError):
                message = f"lost the response cache at {self.location} ({self._reason(exc)}); start Redis again, fix MAMABEAR_CACHE_URL, or pass --no-cache."
            else:
                message = f"the response cache at {self.location} failed ({self._reason(exc)}); fix MAMABEAR_CACHE_URL, or pass --no-cache."
            raise UsageError(message) from exc

    def get(self, key: str) -> dict | None:
        raw = self._call(lambda: self._client.get(REDIS_PREFIX + key))
        if raw is None:
            return None
        return _loads(raw)

    def put(self, key: str, value: dict, ttl_s: float | None) -> None:
        _check_ttl(ttl_s)
        text = _dumps(value)
        px = None if ttl_s is None else max(1, round(ttl_s * 1000))
        self._call(lambda: self._client.set(REDIS_PREFIX + key, text, px=px))

    def clear(self) -> int:
        """Delete this cache's keys only (SCAN in batches: never KEYS, which blocks a busy server)."""

        def run() -> int:
            removed = 0
            batch: list[bytes] = []
            for name in self._client.scan_iter(match=REDIS_PREFIX + "*", count=1000):
                batch.append(name)
                if len(batch) >= 500:
                    removed += self._client.delete(*batch)
                    batch = []
            if batch:
                removed += self._client.delete(*batch)
            return removed

        return self._call(run)

    def close(self) -> None:
        self._client.close()


# ------------------------------------------------------------------ opening


def open_cache(url: str | None, home: Path) -> ResponseCache:
    """None (or blank) -> SqliteCache(home / "cache.db"); "sqlite:///PATH" -> SqliteCache(PATH) (SQLAlchemy's
    convention: sqlite:///relative.db, sqlite:////absolute.db); "redis://...", "rediss://...", "unix://..." ->
    RedisCache, checked with one PING now. Anything else, or an unreachable Redis: UsageError."""
    if url is None or not url.strip():
        return SqliteCache(Path(home) / "cache.db")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.lower().startswith("sqlite:///") or not url[len("sqlite:///") :]:
            raise UsageError(f"MAMABEAR_CACHE_URL '{shown_url(url)}' names no file; use sqlite:///relative/cache.db or sqlite:////absolute/cache.db.")
        return SqliteCache(Path(url[len("sqlite:///") :]))
    if scheme in REDIS_SCHEMES:
        return RedisCache(url)
    raise UsageError(
        f"MAMABEAR_CACHE_URL '{shown_url(url)}' is not a response cache URL; "
        f"use sqlite:///PATH, redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH/redis.sock."
    )
