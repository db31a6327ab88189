"""The worker pool when its services blink: real PostgreSQL (pgserver) as the run store, a real Redis broker, two real
workers, and the scripted model server. Each test puts one fault in mid-batch and then counts, against the model
server's own request log: runs completed, runs left queued or running, tasks missing, and completed tasks asked again."""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict

import pytest

from conftest import wait_for
from pgserver_fixture import pgserver_handle
from redisserver import RedisServer
from test_workers import HOST, up, workers_in

STEPS = ("Gather", "Sort", "Weigh", "Write")  # four tasks a run: long enough to be caught in flight
AGENTS = "noter:\n  role: Noter\n  goal: Note facts about {topic}\n  backstory: Keeps notes.\n  tier: fast\n"
TASKS = "".join(f"{s.lower()}:\n  description: {s} the notes about {{topic}}.\n  expected_output: One line.\n  agent: noter\n" for s in STEPS)
CREW = "description: four steps\nagents: [noter]\ntasks: [gather, sort, weigh, write]\ninputs: [topic]\n"
STALE_S = 8
ENDED = ("completed", "failed", "cancelled", "budget_exceeded", "time_limit")


@pytest.fixture
def services(tmp_path):  # noqa: ANN001, ANN201
    with pgserver_handle() as (url, pg), RedisServer(password="s3cret-broker") as broker:
        yield url, pg, broker


@pytest.fixture
def pool(services, isolated, monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    url, _, broker = services
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "crews").mkdir()
    (project / "config" / "agents.yaml").write_text(AGENTS)
    (project / "config" / "tasks.yaml").write_text(TASKS)
    (project / "crews" / "steps.yaml").write_text(CREW)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MAMABEAR_BROKER_URL", broker.url)
    monkeypatch.setenv("MAMABEAR_DATABASE_URL", url)
    monkeypatch.setenv("MAMABEAR_HEARTBEAT_STALE_S", str(STALE_S))
    with workers_in(project, tmp_path, MAMABEAR_HOME=str(isolated)) as start:
        # MAMABEAR_DATABASE_URL is kept from subprocesses unless given: each worker is told its store
        def with_store(name: str, concurrency: int = 2, store: str | None = None, **env: str) -> subprocess.Popen:
            return start(name, concurrency, MAMABEAR_DATABASE_URL=store or url, **env)

        with_store.log = start.log  # type: ignore[attr-defined]
        yield with_store


def store_at(url: str):  # noqa: ANN201
    from mamabear.store.database import Store

    return Store.open(url)


def queue_batch(cli, fake, count: int) -> dict[str, str]:  # noqa: ANN001
    """``count`` runs of the four-step crew queued; topic by run id."""
    ids = {}
    for i in range(count):
        result = cli("run", "steps", "-i", f"topic=otter {i}", "--queue", "--base-url", fake.url, "--json")
        assert result.code == 0, result.err
        ids[result.json()["run_id"]] = f"otter {i}"
    return ids


def tally(store, fake, ids: dict[str, str]) -> dict[str, object]:  # noqa: ANN001
    """What the batch came to: runs by status, tasks missing from completed runs, and completed tasks asked again (a
    request for a task after its row says it was completed)."""
    asked: dict[tuple[str, str], list[float]] = defaultdict(list)
    for request in fake.chat_requests:
        for run_id, topic in ids.items():
            if f"about {topic}." in request["task"]:
                asked[(run_id, request["task"].split()[2])].append(request["time"])
    statuses: dict[str, int] = defaultdict(int)
    missing, repeated = [], []
    for run_id in ids:
        run = store.run(run_id)
        statuses[str(run.status)] += 1
        for task in store.tasks(run_id):
            if run.status == "completed" and task.status != "completed":
                missing.append((run_id, task.task, str(task.status)))
            times = asked.get((run_id, task.task.capitalize()), [])
            if task.status == "completed" and task.finished_at is not None:
                repeated += [(run_id, task.task) for t in times if t > task.finished_at + 0.5]
    return {"statuses": dict(statuses), "missing": missing, "repeated": repeated, "requests": len(fake.chat_requests)}


def every_run_ended(store, fake, ids: dict[str, str], log) -> dict[str, object]:  # noqa: ANN001
    """Waits until every run of the batch has ended; the tally (with the runs and a worker's log when some do not)."""
    try:
        wait_for(lambda: all(store.run(i).status in ENDED for i in ids), timeout=240, what="every run ended")
    except AssertionError as exc:
        raise AssertionError(tally(store, fake, ids), [(i, store.run(i).status, store.run(i).error) for i in ids], log()[-4000:]) from exc
    return tally(store, fake, ids)


def store_blinks(cli, fake, pool, url: str, pg, runs: int, down_s: float, **worker_env: str):  # noqa: ANN001, ANN201
    """Two workers, ``runs`` queued; with 4 model calls in flight PostgreSQL is stopped for ``down_s`` seconds. The
    store, the run ids and the batch's tally once every run has ended."""
    pool("w1", **worker_env)
    pool("w2", **worker_env)
    up(cli, "w1", "w2")
    ids = queue_batch(cli, fake, runs)
    wait_for(lambda: len(fake.chat_requests) >= 4, timeout=120, what="runs in flight")
    pg.stop()
    time.sleep(down_s)
    pg.start()
    store = store_at(url)
    return store, ids, every_run_ended(store, fake, ids, lambda: pool.log("w1"))


def test_a_postgresql_restart_mid_batch_loses_no_run_and_repeats_no_completed_task(cli, fake, pool, services):
    url, pg, _ = services
    fake.add(delay=1.0)  # every answer takes a second: runs are in flight when the store goes
    store, ids, counted = store_blinks(cli, fake, pool, url, pg, runs=6, down_s=10)
    assert counted["statuses"] == {"completed": 6} and counted["missing"] == [] and counted["repeated"] == [], (counted, pool.log("w1")[-3000:])


def test_a_store_outage_longer_than_the_wait_ends_runs_interrupted_and_the_sweeper_carries_them_out(cli, fake, pool, services):
    """Workers told to wait 2 s for the store; it is gone 12 s. The runs in flight end interrupted (resumable), not
    failed, and complete on a later attempt without asking again for a task that was recorded completed."""
    url, pg, _ = services
    fake.add(delay=1.0)
    store, ids, counted = store_blinks(cli, fake, pool, url, pg, runs=4, down_s=12, MAMABEAR_STORE_WAIT_S="2")
    assert counted["statuses"] == {"completed": 4} and counted["missing"] == [] and counted["repeated"] == [], (counted, pool.log("w1")[-3000:])
    attempts = [a for i in ids for a in store.attempts(i)]
    assert len(attempts) > len(ids), "the outage outlasted the wait, so some run needed a second attempt"
    assert {str(a["status"]) for a in attempts} <= {"completed", "interrupted"}, [(a["run_id"], a["status"]) for a in attempts]


def test_a_broker_that_loses_its_messages_loses_no_run(cli, fake, pool, services, tmp_path):
    """Redis without persistence, killed for 5 s: the queued runs' messages are gone; the sweeper sends them again.
    The same Redis holds the provider quota's buckets: runs booking through it wait for it instead of failing."""
    url, _, broker = services
    (tmp_path / "project" / "config" / "models.yaml").write_text("providers:\n  openai:\n    env: [OPENAI_API_KEY]\n    rpm: 6000\n")
    fake.add(delay=0.5)
    pool("w1", concurrency=1)
    pool("w2", concurrency=1)
    up(cli, "w1", "w2")
    ids = queue_batch(cli, fake, 6)
    wait_for(lambda: len(fake.chat_requests) >= 2, timeout=120, what="runs in flight")
    broker.kill()
    time.sleep(5)
    broker.start_again()
    store = store_at(url)
    counted = every_run_ended(store, fake, ids, lambda: pool.log("w1"))
    assert counted["statuses"] == {"completed": 6} and counted["missing"] == [] and counted["repeated"] == [], counted
    logs = pool.log("w1") + pool.log("w2")
    assert "had no message in the broker" in logs
    import redis

    assert redis.Redis.from_url(broker.url).hget("mamabear:quota:openai", "next_at"), "the runs booked their quota in the broker's Redis"
    waits = [e["message"] for i in ids for e in store.events(i, kinds=("quota_wait",))]
    assert any("quota buckets in Redis (unreachable for" in w for w in waits), waits  # waited for it, did not fail


def test_a_worker_pointed_at_another_store_hands_runs_back_and_every_run_completes(cli, fake, pool, services, tmp_path):
    url, _, _ = services
    pool("stray", concurrency=1, store=f"sqlite:///{tmp_path / 'other.db'}")
    pool("w1", concurrency=1)
    up(cli, "stray", "w1")
    ids = queue_batch(cli, fake, 4)
    store = store_at(url)
    counted = every_run_ended(store, fake, ids, lambda: pool.log("stray"))
    assert counted["statuses"] == {"completed": 4} and counted["missing"] == [] and counted["repeated"] == [], counted
    assert {store.run(i).worker for i in ids} == {f"w1@{HOST}"}
    assert "is not in this worker's store" in pool.log("stray")
