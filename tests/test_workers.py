"""The worker pool: real `mamabear worker` processes (Celery, threads pool) on a real Redis broker started here, one
run store they share, and the scripted model server. A worker's machine is lost by SIGKILLing its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import store_for, subprocess_env, wait_for
from redisserver import RedisServer

AGENTS = "noter:\n  role: Noter\n  goal: Note facts about {topic}\n  backstory: Keeps notes.\n  tier: fast\n"
TASKS = (
    "note:\n  description: Note one fact about {topic}.\n  expected_output: One line.\n  agent: noter\n"
    "check:\n  description: Check the note about {topic}.\n  expected_output: One line.\n  agent: noter\n"
)
CREWS = {
    "note": "description: one note\nagents: [noter]\ntasks: [note]\ninputs: [topic]\n",
    "checked": "description: a note, checked\nagents: [noter]\ntasks: [note, check]\ninputs: [topic]\n",
}
STALE_S = 6  # MAMABEAR_HEARTBEAT_STALE_S for these workers
HOST = socket.gethostname()


@pytest.fixture(scope="module")
def broker():  # noqa: ANN201
    with RedisServer() as server:
        yield server


@pytest.fixture
def pool(broker, isolated, monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    """A project with two crews, the broker in the environment, and a way to start workers in the project's root."""
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "crews").mkdir()
    (project / "config" / "agents.yaml").write_text(AGENTS)
    (project / "config" / "tasks.yaml").write_text(TASKS)
    for name, text in CREWS.items():
        (project / "crews" / f"{name}.yaml").write_text(text)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MAMABEAR_BROKER_URL", broker.url)
    broker_flush(broker)
    started: list[subprocess.Popen] = []

    def start(name: str, concurrency: int = 2) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - open while the worker runs
        proc = subprocess.Popen(
            [sys.executable, "-m", "mamabear", "worker", "--name", name, "--concurrency", str(concurrency)],
            env=subprocess_env(MAMABEAR_HOME=str(isolated), MAMABEAR_HEARTBEAT_STALE_S=str(STALE_S)),
            cwd=project,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: its runs are in it, as on a machine of its own
        )
        started.append(proc)
        return proc

    start.log = lambda name: (tmp_path / f"{name}.log").read_text(errors="replace")  # type: ignore[attr-defined]
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def broker_flush(broker: RedisServer) -> None:
    import redis

    redis.Redis.from_url(broker.url).flushall()


def up(cli, *names: str) -> list[dict]:  # noqa: ANN001
    return wait_for(lambda: (found := cli("workers", "--json").json()) and {w["name"] for w in found} >= {f"{n}@{HOST}" for n in names} and found,
                    timeout=60, what=f"workers {names} up")  # fmt: skip


def queued(cli, crew: str, topic: str, fake) -> str:  # noqa: ANN001
    result = cli("run", crew, "-i", f"topic={topic}", "--queue", "--base-url", fake.url, "--json")
    assert result.code == 0, result.err
    assert result.json()["status"] == "queued"
    return result.json()["run_id"]


def test_twenty_queued_runs_over_two_workers_all_complete_and_the_store_counts_every_request(cli, fake, pool, isolated):
    pool("w1")
    pool("w2")
    up(cli, "w1", "w2")
    ids = [queued(cli, "note", f"otter {i}", fake) for i in range(20)]
    store = store_for(isolated)
    wait_for(lambda: all(store.run(i).status == "completed" for i in ids), timeout=300, what="20 runs completed")
    assert sum(r.llm_calls for r in store.list_runs(limit=50)) == len(fake.chat_requests) == 20
    assert {store.run(i).worker for i in ids} == {f"w1@{HOST}", f"w2@{HOST}"}  # both took runs
    assert {r.status for r in store.list_runs(limit=50)} == {"completed"}


@pytest.mark.parametrize("lost", ["machine", "worker process"])
def test_a_lost_worker_s_run_completes_on_the_other_with_no_completed_task_repeated(cli, fake, pool, isolated, lost):
    """The machine: the worker and the run's process die at once. The worker process alone: its run ends with it
    (stopped as on SIGTERM, so no run goes on unseen without a worker), and is queued again."""
    fake.add(task="Check the note", delay=120, times=1)  # the second task's first call hangs where the run first is
    workers = {"w1": pool("w1"), "w2": pool("w2")}
    up(cli, "w1", "w2")
    run_id = queued(cli, "checked", "otters", fake)
    wait_for(lambda: any("Check the note" in r["task"] for r in fake.chat_requests), timeout=120, what="the hanging call")
    store = store_for(isolated)
    holder = store.run(run_id).worker.split("@")[0]
    listed = {w["name"]: w for w in cli("workers", "--json").json()}
    assert [r["id"] for r in listed[f"{holder}@{HOST}"]["runs"]] == [run_id]  # `workers` says who holds it
    if lost == "machine":
        os.killpg(workers[holder].pid, signal.SIGKILL)  # the worker and the run's process with it
    else:
        workers[holder].kill()
    lost_at = time.time()
    wait_for(lambda: store.run(run_id).status == "completed", timeout=120, what="the run completed elsewhere")
    other = next(n for n in workers if n != holder)
    assert store.run(run_id).worker == f"{other}@{HOST}"
    assert len([r for r in fake.chat_requests if "Note one fact" in r["task"]]) == 1  # the done task is not asked again
    resumed_call = [r for r in fake.chat_requests if "Check the note" in r["task"]][1]
    assert resumed_call["time"] - lost_at <= STALE_S + 5 + 20  # stale time + one sweep + starting the run (README)
    attempts = cli("runs", "show", run_id, "--json").json()["attempts"]
    # Here both workers share one host, so the lost process is seen by its pid; from another machine, by its heartbeat
    # (tests/test_heartbeat.py).
    assert [a["status"] for a in attempts] == ["interrupted", "completed"]
    assert ("ended without finishing" if lost == "machine" else "SIGTERM") in attempts[0]["error"], attempts[0]["error"]


def test_cancel_reaches_a_run_on_a_worker_and_a_run_still_in_the_queue(cli, fake, pool, isolated):
    fake.add(task="Note one fact", delay=120, times=1)
    pool("w1", concurrency=1)
    up(cli, "w1")
    running = queued(cli, "note", "otters", fake)
    waiting = queued(cli, "note", "owls", fake)  # the only slot is taken
    wait_for(lambda: fake.chat_requests, timeout=120, what="the first run's call")
    assert cli("runs", "cancel", waiting).code == 0
    assert cli("runs", "cancel", running).code == 0
    store = store_for(isolated)
    wait_for(lambda: store.run(running).status == "cancelled", timeout=60, what="the running run cancelled")
    time.sleep(3)  # the worker takes the waiting run's message now, and leaves it alone
    assert store.run(waiting).status == "cancelled" and store.run(waiting).attempt == 0
    assert len(fake.chat_requests) == 1


def test_queue_without_a_broker_or_with_one_down_is_one_sentence_and_leaves_no_run(cli, fake, isolated, monkeypatch):
    (Path.cwd() / "config").mkdir()
    monkeypatch.delenv("MAMABEAR_BROKER_URL", raising=False)
    result = cli("run", "research", "-i", "topic=otters", "--queue", "--base-url", fake.url)
    assert result.code == 2 and "set MAMABEAR_BROKER_URL" in result.err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MAMABEAR_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    result = cli("run", "research", "-i", "topic=otters", "--queue", "--base-url", fake.url)
    assert result.code == 2 and f"cannot reach the broker at 127.0.0.1:{port}/0" in result.err and "Traceback" not in result.err
    assert cli("runs", "list", "--json").json() == []
