"""Client-side rate limits: the bucket arithmetic on a fake clock, then real time and two real processes sharing one file."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from itertools import pairwise
from pathlib import Path

import pytest

from mamabear.errors import ConfigError, UsageError
from mamabear.llm import quota as quota_module
from mamabear.llm.quota import Quota, QuotaBook


class Clock:
    """A clock that only moves when told; its sleep is the wait callback acquire() wants."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.waits: list[tuple[float, str]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, reason: str) -> None:
        self.waits.append((seconds, reason))
        self.now += seconds


def book(tmp_path: Path, clock: Clock, **quotas: Quota) -> QuotaBook:
    return QuotaBook(tmp_path / "state" / "quotas.db", quotas, clock=clock)


# ------------------------------------------------------------ requests per minute


def test_requests_are_evenly_spaced(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=60))
    assert quotas.reserve("openai", 10) == 0.0
    assert quotas.reserve("openai", 10) == pytest.approx(1.0)  # nothing booked, so asking again changes nothing
    assert quotas.reserve("openai", 10) == pytest.approx(1.0)
    clock.now += 0.25
    assert quotas.reserve("openai", 10) == pytest.approx(0.75)
    clock.now += 0.75
    assert quotas.reserve("openai", 10) == 0.0
    clock.now += 5.0  # an idle spell does not save up a burst: capacity is one request
    assert quotas.reserve("openai", 10) == 0.0
    assert quotas.reserve("openai", 10) == pytest.approx(1.0)


def test_acquire_waits_exactly_the_spacing(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=120))
    booked = []
    for _ in range(5):
        quotas.acquire("openai", 1, clock.sleep)
        booked.append(clock.now)
    assert [b - a for a, b in pairwise(booked)] == pytest.approx([0.5] * 4)
    assert clock.waits == [(pytest.approx(0.5), "openai quota: 120 requests/min")] * 4
    assert quotas.acquire("openai", 1, clock.sleep) == pytest.approx(0.5)
    clock.now += 10
    assert quotas.acquire("openai", 1, clock.sleep) == 0.0


def test_providers_have_separate_buckets(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=60), anthropic=Quota(rpm=30))
    assert quotas.reserve("openai", 1) == 0.0
    assert quotas.reserve("anthropic", 1) == 0.0
    assert quotas.reserve("openai", 1) == pytest.approx(1.0)
    assert quotas.reserve("anthropic", 1) == pytest.approx(2.0)


# ------------------------------------------------------------ tokens per minute


def test_token_bucket_starts_full_and_refills(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(tpm=6_000))  # refills 100 tokens a second
    assert quotas.reserve("openai", 4_000) == 0.0
    assert quotas.reserve("openai", 2_000) == 0.0
    assert quotas.reserve("openai", 500) == pytest.approx(5.0)
    clock.now += 2.0
    assert quotas.reserve("openai", 500) == pytest.approx(3.0)
    clock.now += 3.0
    assert quotas.reserve("openai", 500) == 0.0
    clock.now += 3600  # refill stops at the capacity
    assert quotas.reserve("openai", 6_000) == 0.0
    assert quotas.reserve("openai", 1) == pytest.approx(0.01)


def test_settle_corrects_the_estimate_both_ways(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(tpm=6_000))
    assert quotas.reserve("openai", 1_000) == 0.0
    quotas.settle("openai", estimated=1_000, actual=9_000)  # level 6,000 - 9,000 = -3,000: debt
    assert quotas.reserve("openai", 0) == pytest.approx(30.0)  # even an empty request waits out the debt
    assert quotas.reserve("openai", 1_000) == pytest.approx(40.0)
    clock.now += 40.0
    assert quotas.reserve("openai", 1_000) == 0.0  # level 0 now
    quotas.settle("openai", estimated=1_000, actual=100)  # 900 tokens handed back
    assert quotas.reserve("openai", 900) == 0.0
    quotas.settle("openai", estimated=9_000, actual=0)  # a refund never overfills the bucket
    clock.now += 1.0
    assert quotas.reserve("openai", 6_000) == 0.0
    assert quotas.reserve("openai", 1) == pytest.approx(0.01)


def test_a_request_bigger_than_the_bucket_goes_once_it_is_full(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(tpm=6_000))
    assert quotas.reserve("openai", 1_000) == 0.0
    assert quotas.reserve("openai", 50_000) == pytest.approx(10.0)  # waits for a full bucket, not for 50,000 tokens
    clock.now += 10.0
    assert quotas.reserve("openai", 50_000) == 0.0  # and leaves it 44,000 in debt
    assert quotas.reserve("openai", 100) == pytest.approx(441.0)


def test_acquire_names_the_token_limit(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(tpm=100_000))
    assert quotas.acquire("openai", 100_000, clock.sleep) == 0.0
    assert quotas.acquire("openai", 50_000, clock.sleep) == pytest.approx(30.0)
    assert clock.waits == [(pytest.approx(30.0), "openai quota: 100,000 tokens/min")]


# ------------------------------------------------------------ both limits


def test_the_longer_wait_binds_and_is_named(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=60, tpm=6_000))
    assert quotas.reserve("openai", 5_900) == 0.0
    # Requests would allow one in 1 s, tokens (100 left, 100/s) in 4 s: tokens bind.
    assert quotas.acquire("openai", 500, clock.sleep) == pytest.approx(4.0)
    assert clock.waits == [(pytest.approx(4.0), "openai quota: 6,000 tokens/min")]
    clock.waits.clear()
    # Tokens allow 10 at once; requests need the full second.
    assert quotas.acquire("openai", 10, clock.sleep) == pytest.approx(1.0)
    assert clock.waits == [(pytest.approx(1.0), "openai quota: 60 requests/min")]


def test_nothing_is_booked_when_either_limit_binds(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=60, tpm=6_000))
    assert quotas.reserve("openai", 100) == 0.0
    # Refused by rpm: the 5,000 tokens must not leave the bucket.
    assert quotas.reserve("openai", 5_000) == pytest.approx(1.0)
    clock.now += 1.0
    assert quotas.reserve("openai", 5_900) == 0.0  # the bucket is full again only because the refused request took nothing


def test_fractional_quotas_read_naturally(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, local=Quota(rpm=0.5))
    quotas.acquire("local", 1, clock.sleep)
    quotas.acquire("local", 1, clock.sleep)
    assert clock.waits == [(pytest.approx(120.0), "local quota: 0.5 requests/min")]


# ------------------------------------------------------------ the shared file


def test_a_second_book_sees_the_first_ones_bookings(tmp_path: Path) -> None:
    clock = Clock()
    first = book(tmp_path, clock, openai=Quota(rpm=60, tpm=6_000))
    assert first.reserve("openai", 6_000) == 0.0
    second = book(tmp_path, clock, openai=Quota(rpm=60, tpm=6_000))  # another run, same file
    assert second.reserve("openai", 100) == pytest.approx(1.0)
    clock.now += 1.0
    assert second.reserve("openai", 200) == pytest.approx(1.0)  # 100 tokens back after 1 s, 200 wanted
    clock.now += 1.0
    assert second.reserve("openai", 200) == 0.0
    assert first.reserve("openai", 1) == pytest.approx(1.0)  # and the first sees the second's


def test_a_stricter_quota_left_in_the_file_does_not_hold_up_a_looser_one(tmp_path: Path) -> None:
    clock = Clock()
    assert book(tmp_path, clock, openai=Quota(rpm=1)).reserve("openai", 1) == 0.0
    assert book(tmp_path, clock, openai=Quota(rpm=60)).reserve("openai", 1) == pytest.approx(1.0)


def test_a_clock_stepped_back_costs_at_most_one_interval(tmp_path: Path) -> None:
    clock = Clock()
    quotas = book(tmp_path, clock, openai=Quota(rpm=60, tpm=6_000))
    assert quotas.reserve("openai", 6_000) == 0.0
    clock.now -= 3600
    assert quotas.reserve("openai", 100) == pytest.approx(1.0)
    clock.now += 1.0
    assert quotas.reserve("openai", 100) == 0.0


def test_unlimited_providers_touch_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("the quota file was opened")

    monkeypatch.setattr(quota_module.sqlite3, "connect", no_io)
    path = tmp_path / "state" / "quotas.db"
    quotas = QuotaBook(path, {"openai": Quota(), "anthropic": Quota(rpm=None, tpm=None), "gemini": Quota(rpm=60)})
    assert quotas.reserve("openai", 10_000) == 0.0
    assert quotas.reserve("mistral", 10_000) == 0.0  # a provider with no quota at all
    assert quotas.acquire("openai", 10_000, lambda s, r: pytest.fail("waited")) == 0.0
    quotas.settle("openai", 10, 1_000_000)
    quotas.settle("gemini", 10, 1_000_000)  # no token limit: nothing to settle
    assert not path.parent.exists()


def test_the_file_and_its_folder_are_made_on_first_use_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "quotas.db"
    quotas = QuotaBook(path, {"openai": Quota(rpm=60)})
    assert not path.parent.exists()
    assert quotas.reserve("openai", 1) == 0.0
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_file_is_one_sentence_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "quotas.db"
    path.write_bytes(b"this is not a database, just bytes left by something else " * 100)
    quotas = QuotaBook(path, {"openai": Quota(rpm=60)})
    with pytest.raises(UsageError) as caught:
        quotas.reserve("openai", 1)
    assert str(path) in caught.value.message and "delete it" in caught.value.message
    path.unlink()  # as the message says
    assert quotas.reserve("openai", 1) == 0.0


@pytest.mark.parametrize(
    ("quota", "words"),
    [
        (Quota(rpm=0), "rpm 0 must be a number more than zero"),
        (Quota(tpm=-5), "tpm -5 must be a number more than zero"),
        (Quota(rpm=60, tpm=float("nan")), "tpm nan must be"),
    ],
)
def test_quotas_must_be_positive(tmp_path: Path, quota: Quota, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        QuotaBook(tmp_path / "quotas.db", {"openai": quota})
    assert words in caught.value.message and "'openai'" in caught.value.message
    assert not (tmp_path / "quotas.db").exists()


def test_a_quota_needs_a_provider_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provider's name"):
        QuotaBook(tmp_path / "quotas.db", {" ": Quota(rpm=60)})


# ------------------------------------------------------------ real time, real processes


def test_real_clock_spacing(tmp_path: Path) -> None:
    quotas = QuotaBook(tmp_path / "quotas.db", {"openai": Quota(rpm=600)})
    started = time.monotonic()
    waited = sum(quotas.acquire("openai", 1, lambda seconds, reason: time.sleep(seconds)) for _ in range(6))
    assert time.monotonic() - started >= 0.5 - 1e-3
    assert waited > 0


def _book_many(path: str, count: int, start: multiprocessing.synchronize.Event, out: multiprocessing.queues.Queue) -> None:
    """A child process: book `count` requests and report the clock reading each booking was made at."""
    last = [0.0]

    def clock() -> float:
        last[0] = time.time()
        return last[0]

    quotas = QuotaBook(path if path.startswith("redis://") else Path(path), {"openai": Quota(rpm=1200)}, clock=clock)
    start.wait()
    booked = []
    for _ in range(count):
        quotas.acquire("openai", 1, lambda seconds, reason: time.sleep(seconds))
        booked.append(last[0])  # reserve() reads the clock once, inside the lock: this is the booking's own stamp
    out.put(booked)


def _two_processes_book(where: str, count: int = 8) -> list[float]:
    """Two processes book ``count`` requests each through the quota at ``where`` (a file, or a redis:// URL); the
    bookings' clock readings, sorted, checked to be at least the spacing apart."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_book_many, args=(where, count, start, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    stamps = sorted(out.get(timeout=60) + out.get(timeout=60))
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert len(stamps) == 2 * count
    gaps = [b - a for a, b in pairwise(stamps)]
    assert min(gaps) >= 0.05 - 1e-4, gaps
    return stamps


def test_two_processes_share_one_spacing(tmp_path: Path) -> None:
    _two_processes_book(str(tmp_path / "quotas.db"))


def test_with_a_broker_two_processes_share_one_spacing_through_redis(tmp_path: Path) -> None:
    """The worker pool's quota: the buckets live in the broker's Redis, so two workers (here two processes) share them."""
    import redis

    from redisserver import RedisServer

    with RedisServer() as server:
        _two_processes_book(server.url)
        assert redis.Redis.from_url(server.url).hget("mamabear:quota:openai", "next_at")  # booked there, not in a file
    assert not list(tmp_path.rglob("*.db"))  # no quota file was made


def test_buckets_in_a_redis_that_is_down_are_one_sentence_before_the_run(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    quotas = QuotaBook(f"redis://127.0.0.1:{port}/0", {"openai": Quota(rpm=60, tpm=1000)})
    with pytest.raises(UsageError, match="the quota buckets in Redis cannot be used"):
        quotas.check()
    quotas.settle("openai", 10, 20)  # after a paid call, a Redis that went away costs the bucket's accuracy, not the call
    assert QuotaBook("redis+socket:///tmp/r.sock?virtual_host=2", {}).url == "unix:///tmp/r.sock?db=2"
    assert QuotaBook(str(tmp_path / "q.db"), {}).url is None


def test_a_quota_redis_that_goes_away_mid_run_is_waited_for_then_each_process_books_alone(monkeypatch) -> None:
    """A Redis restart used to fail the runs that booked through it ("the quota buckets in Redis cannot be used")."""
    from redisserver import RedisServer

    monkeypatch.setattr(quota_module, "REDIS_WAIT_S", 1.5)  # a minute, as shipped
    said: list[str] = []

    def wait(seconds: float, reason: str) -> None:
        said.append(reason)
        time.sleep(seconds)

    server = RedisServer().start()
    quotas = QuotaBook(server.url, {"openai": Quota(rpm=600)})
    quotas.check()
    assert quotas.acquire("openai", 10, wait) == 0.0
    server.stop()
    started = time.monotonic()
    quotas.acquire("openai", 10, wait)  # waits for the Redis, then books in this process
    assert 1.4 <= time.monotonic() - started < 10
    assert said[0].startswith("quota buckets in Redis (unreachable for") and said[-1].endswith("booking in this process alone from now on")
    started = time.monotonic()
    spaced = sum(quotas.acquire("openai", 10, wait) for _ in range(3))  # the limit still holds, here
    assert spaced >= 0.1 - 1e-3 and time.monotonic() - started < 5
