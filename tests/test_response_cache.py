"""The response cache's storage and key: SQLite (default) and Redis (a throwaway redis-server per session)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import socket
import sqlite3
import time
from datetime import date
from pathlib import Path

import pytest

from mamabear.errors import UsageError
from mamabear.llm.response_cache import REDIS_PREFIX, RedisCache, SqliteCache, open_cache, request_key
from redisserver import RedisServer

REQUEST = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 512,
    "stop": ["\n\n"],
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Seals?"}],
    "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}],
}
REPLY = {
    "choices": [{"message": {"role": "assistant", "content": "Seals are pinnipeds. ☃"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "details": {"cached": None, "list": [1, 2.5, True]}},
}


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()  # skips the test when there is no redis-server binary
    yield server
    server.stop()


@pytest.fixture
def raw_redis(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def sqlite_cache(isolated):
    cache = open_cache(None, isolated)
    yield cache
    cache.close()


@pytest.fixture
def redis_cache(redis_server, raw_redis):
    cache = open_cache(redis_server.url, Path("unused"))
    yield cache
    cache.close()


@pytest.fixture(params=["sqlite", "redis"])
def cache(request):
    return request.getfixturevalue(f"{request.param}_cache")


def _refused_port() -> int:
    with socket.socket() as s:  # bound and closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the key


def test_request_key_is_the_sha256_of_compact_sorted_json():
    assert request_key({}) == hashlib.sha256(b"{}").hexdigest()
    assert request_key({"b": 1, "a": [1, "x"]}) == hashlib.sha256(b'{"a":[1,"x"],"b":1}').hexdigest()


def test_request_key_ignores_key_order_at_every_depth():
    shuffled = {k: REQUEST[k] for k in reversed(list(REQUEST))}
    shuffled["messages"] = [dict(reversed(list(m.items()))) for m in REQUEST["messages"]]
    assert list(shuffled) != list(REQUEST)
    assert request_key(shuffled) == request_key(REQUEST)


def _variants(value, path=()):
    """Every copy of value with exactly one leaf or key changed."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield {**{kk: vv for kk, vv in value.items() if kk != k}, k + "_": v}
            for changed in _variants(v, path + (k,)):
                yield {**value, k: changed}
    elif isinstance(value, list):
        for i, v in enumerate(value):
            for changed in _variants(v, path + (i,)):
                yield value[:i] + [changed] + value[i + 1 :]
        yield value + [None]
    elif isinstance(value, str):
        yield value + "!"
    elif isinstance(value, bool) or value is None:
        yield "changed"
    else:
        yield value + 1


def test_request_key_changes_with_any_field():
    variants = list(_variants(REQUEST))
    assert len(variants) > 20
    keys = {request_key(v) for v in variants}
    assert request_key(REQUEST) not in keys
    assert len(keys) == len(variants)
    assert request_key({"n": 1}) != request_key({"n": "1"}) != request_key({"n": 1.5})


def test_request_key_accepts_values_json_cannot_encode():
    payload = {"when": date(2025, 1, 2), "path": Path("/tmp/x"), 3: "int key", "tags": {"b", "a", "c"}}
    assert request_key(payload) == request_key(dict(reversed(list(payload.items()))))
    assert request_key(payload) == request_key({**payload, "tags": {"c", "a", "b"}, "when": "2025-01-02"})
    assert request_key(payload) != request_key({**payload, "when": date(2025, 1, 3)})


# ------------------------------------------------------------------ both backends


def test_round_trip_of_a_nested_dict(cache):
    key = request_key(REQUEST)
    cache.put(key, REPLY, None)
    assert cache.get(key) == REPLY
    assert cache.get(key) == REPLY  # a hit does not consume the entry


def test_unknown_key_misses(cache):
    cache.put(request_key(REQUEST), REPLY, None)
    assert cache.get(request_key({**REQUEST, "temperature": 0.3})) is None
    assert cache.get("") is None


def test_entries_expire_after_their_ttl(cache):
    cache.put("short", {"v": 1}, 0.3)
    cache.put("forever", {"v": 2}, None)
    cache.put("long", {"v": 3}, 60)
    assert cache.get("short") == {"v": 1}
    time.sleep(0.45)
    assert cache.get("short") is None
    assert cache.get("forever") == {"v": 2}
    assert cache.get("long") == {"v": 3}


def test_a_put_replaces_the_entry_and_its_ttl(cache):
    cache.put("k", {"v": 1}, 0.2)
    cache.put("k", {"v": 2}, None)
    time.sleep(0.3)
    assert cache.get("k") == {"v": 2}
    cache.put("k", {"v": 3}, 0.2)
    assert cache.get("k") == {"v": 3}
    time.sleep(0.3)
    assert cache.get("k") is None


def test_ttl_must_be_positive(cache):
    for ttl in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            cache.put("k", {"v": 1}, ttl)
    assert cache.get("k") is None


def test_clear_removes_every_entry_and_counts_them(cache):
    for i in range(3):
        cache.put(f"k{i}", {"i": i}, None)
    assert cache.clear() == 3
    assert all(cache.get(f"k{i}") is None for i in range(3))
    assert cache.clear() == 0
    cache.put("again", {"ok": True}, None)
    assert cache.get("again") == {"ok": True}


def test_redis_clear_leaves_foreign_keys_alone(redis_cache, raw_redis):
    raw_redis.set("someone:else", "keep me")
    raw_redis.set("mamabear:other", "keep me too")
    for i in range(1203):  # more than one SCAN page and one DEL batch
        redis_cache.put(f"k{i}", {"i": i}, None)
    assert raw_redis.get(REDIS_PREFIX + "k7") == b'{"i":7}'  # stored as JSON text under the prefix
    assert redis_cache.clear() == 1203
    assert sorted(raw_redis.keys("*")) == [b"mamabear:other", b"someone:else"]


def test_redis_ttl_is_set_on_the_server(redis_cache, raw_redis):
    redis_cache.put("k", {"v": 1}, 30)
    redis_cache.put("f", {"v": 1}, None)
    assert 29_000 < raw_redis.pttl(REDIS_PREFIX + "k") <= 30_000
    assert raw_redis.pttl(REDIS_PREFIX + "f") == -1


# ------------------------------------------------------------------ SQLite specifics


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, hits, expires_at IS NULL FROM responses ORDER BY key").fetchall()


def test_sqlite_lives_in_home_and_counts_hits(sqlite_cache, isolated):
    path = isolated / "cache.db"
    assert isinstance(sqlite_cache, SqliteCache) and sqlite_cache.location == str(path)
    sqlite_cache.put("a", {"v": 1}, None)
    sqlite_cache.put("b", {"v": 2}, 60)
    sqlite_cache.get("a"), sqlite_cache.get("a"), sqlite_cache.get("missing")
    assert _rows(path) == [("a", 2, 1), ("b", 0, 0)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    sqlite_cache.put("a", {"v": 3}, None)  # a new reply starts counting again
    assert _rows(path)[0] == ("a", 0, 1)


def test_sqlite_purges_expired_rows_on_a_later_put(isolated):
    first = open_cache(None, isolated)
    first.put("old", {"v": 1}, 0.2)
    first.put("kept", {"v": 2}, None)
    time.sleep(0.3)
    first.put("new", {"v": 3}, None)  # within a minute of this process's last purge: no purge yet
    assert [r[0] for r in _rows(isolated / "cache.db")] == ["kept", "new", "old"]
    assert first.get("old") is None  # ignored all the same
    second = open_cache(None, isolated)  # another process's first put purges
    second.put("newer", {"v": 4}, None)
    assert [r[0] for r in _rows(isolated / "cache.db")] == ["kept", "new", "newer"]
    first.close(), second.close()


def _write_many(path: str, worker: int, count: int, start) -> None:
    start.wait()
    cache = SqliteCache(Path(path))
    for i in range(count):
        cache.put(f"{worker}-{i}", {"worker": worker, "i": i, "text": "x" * 200}, None if i % 2 else 3600)
        if i % 10 == 0:
            assert cache.get(f"{worker}-{i}")["i"] == i
    cache.close()


def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path):
    path = tmp_path / "shared" / "cache.db"  # neither finds the file: both create it at once
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_write_many, args=(str(path), w, 200, start)) for w in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = SqliteCache(path)
    for w in (1, 2):
        for i in range(200):
            assert cache.get(f"{w}-{i}") == {"worker": w, "i": i, "text": "x" * 200}
    assert len(_rows(path)) == 400
    cache.close()


def _corrupt_pages(path: Path) -> None:
    """Keep page 1 (the header and schema) and overwrite the table's pages with garbage."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))


def test_a_garbage_sqlite_file_is_a_usage_error_naming_it(tmp_path):
    path = tmp_path / "cache.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(UsageError) as caught:
        open_cache(f"sqlite:///{path}", tmp_path)
    assert str(path) in caught.value.message and "deleted safely" in caught.value.message
    path.unlink()
    open_cache(f"sqlite:///{path}", tmp_path).close()  # and deleting it is the cure


def test_a_get_or_put_on_a_damaged_sqlite_file_is_a_usage_error(tmp_path):
    path = tmp_path / "cache.db"
    cache = SqliteCache(path)
    for i in range(50):
        cache.put(f"k{i}", {"text": "x" * 100}, None)
    cache.close()  # the last connection checkpoints the WAL into the file
    _corrupt_pages(path)
    cache = SqliteCache(path)  # the schema on page 1 still reads
    for call in (lambda: cache.get("k3"), lambda: cache.put("new", {"v": 1}, None)):
        with pytest.raises(UsageError) as caught:
            call()
        assert caught.value.message.startswith(f"cannot use the response cache {path} (database disk image is malformed)")
        assert "deleted safely" in caught.value.message and caught.value.message.count(".") >= 1
    cache.close()


# ------------------------------------------------------------------ open_cache


def test_open_cache_dispatches_on_the_url(isolated, redis_server, raw_redis, tmp_path):
    default = open_cache(None, isolated)
    assert isinstance(default, SqliteCache) and default.path == isolated / "cache.db" and (isolated / "cache.db").exists()
    default.close()
    absolute = open_cache(f"sqlite:///{tmp_path}/deep/er/c.db", isolated)
    assert absolute.path == tmp_path / "deep" / "er" / "c.db" and absolute.path.exists()
    absolute.close()
    relative = open_cache("sqlite:///rel/c.db", isolated)
    assert relative.path == Path.cwd() / "rel" / "c.db" and relative.path.exists()
    relative.close()
    for url in (redis_server.url, redis_server.unix_url):
        cache = open_cache(url, isolated)
        assert isinstance(cache, RedisCache) and cache.location == url
        cache.put("via", {"url": url}, None)
        assert cache.get("via") == {"url": url}
        cache.close()


def test_unreachable_redis_is_a_usage_error_without_the_password():
    port = _refused_port()
    for url in (f"redis://alice:hunter2@127.0.0.1:{port}/0", f"redis://:hunter2@127.0.0.1:{port}/0"):
        started = time.monotonic()
        with pytest.raises(UsageError) as caught:
            open_cache(url, Path("unused"))
        assert time.monotonic() - started < 5
        message = caught.value.message
        assert "hunter2" not in message
        user = url.split("//")[1].split(":")[0]
        assert message == (
            f"cannot reach the response cache at redis://{user}:***@127.0.0.1:{port}/0 (Connection refused); "
            f"start Redis, fix MAMABEAR_CACHE_URL, or pass --no-cache."
        )


def test_an_unreachable_unix_socket_hides_a_password_in_the_query(tmp_path):
    with pytest.raises(UsageError) as caught:
        open_cache(f"unix://{tmp_path}/none.sock?db=0&password=hunter2", Path("unused"))
    assert caught.value.message == (
        f"cannot reach the response cache at unix://{tmp_path}/none.sock?db=0&password=*** (No such file or directory); "
        f"start Redis, fix MAMABEAR_CACHE_URL, or pass --no-cache."
    )


def test_a_wrong_redis_password_is_a_usage_error_without_the_password(redis_server):
    url = redis_server.url.replace("redis://", "redis://bob:hunter2@")
    with pytest.raises(UsageError) as caught:
        open_cache(url, Path("unused"))
    assert "hunter2" not in caught.value.message and "bob:***@" in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "memcached://127.0.0.1:11211",
        "postgresql://bob:hunter2@db/x",
        "/tmp/cache.db",
        "localhost:6379",
        "sqlite://",
        "sqlite:///",
        "redis://127.0.0.1:notaport/0",
    ],
)
def test_an_unknown_or_broken_url_is_a_usage_error(url):
    with pytest.raises(UsageError) as caught:
        open_cache(url, Path("unused"))
    message = caught.value.message
    assert "hunter2" not in message and message.startswith("MAMABEAR_CACHE_URL '") and message.endswith(".")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("memcached://alice:p@ss#w?rd@cache:11211/0", "memcached://alice:***@cache:11211/0"),
        ("memcached://:hunter2@cache", "memcached://:***@cache"),
        ("memcached://cache/0?db=1&Password=hunter2&x=1", "memcached://cache/0?db=1&Password=***&x=1"),
        ("alice:hunter2@cache:6379", "alice:***@cache:6379"),
    ],
)
def test_messages_never_show_the_password(url, shown):
    with pytest.raises(UsageError) as caught:
        open_cache(url, Path("unused"))
    assert f"'{shown}'" in caught.value.message and "hunter2" not in caught.value.message


def test_a_redis_that_goes_away_is_a_usage_error_on_get_and_put():
    server = RedisServer().start()  # skips the test when there is no redis-server binary
    try:
        cache = open_cache(server.url, Path("unused"))
        cache.put("k", {"v": 1}, None)
    finally:
        server.stop()
    for call in (lambda: cache.get("k"), lambda: cache.put("k", {"v": 2}, 10), cache.clear):
        with pytest.raises(UsageError) as caught:
            call()
        assert caught.value.message == (
            f"lost the response cache at {server.url} (Connection refused); start Redis again, fix MAMABEAR_CACHE_URL, or pass --no-cache."
        )
    cache.close()
