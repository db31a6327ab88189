"""The worker pool: real `mamabear worker` processes (Celery, threads pool) on a real Redis broker started here, one
run store they share, and the scripted model server. A worker's machine is lost by SIGKILLing its process group."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, store_for, subprocess_env, wait_for
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
    with workers_in(project, tmp_path, MAMABEAR_HOME=str(isolated), MAMABEAR_HEARTBEAT_STALE_S=str(STALE_S), MAMABEAR_BROKER_INSECURE="1") as start:
        yield start


@contextmanager
def workers_in(project: Path, logs: Path, **env: str) -> Iterator[Any]:
    """``start(name, concurrency, **more_env)`` starts `mamabear worker` in the project's root, in a process group of
    its own (its runs are in it, as on a machine of its own), its output in LOGS/NAME.log (``start.log(name)``);
    every worker started is stopped afterwards."""
    started: list[subprocess.Popen] = []

    def start(name: str, concurrency: int = 2, **more: str) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - open while the worker runs
        proc = subprocess.Popen(
            [sys.executable, "-m", "mamabear", "worker", "--name", name, "--concurrency", str(concurrency)],
            env=subprocess_env(**env, **more),
            cwd=project,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    start.log = lambda name: (logs / f"{name}.log").read_text(errors="replace")  # type: ignore[attr-defined]
    try:
        yield start
    finally:
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
        os.killpg(workers[holder].pid, signal.SIGKILL)  # the worker,
        os.kill(store.run(run_id).pid, signal.SIGKILL)  # and the run's process (in a session of its own) with it
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


def test_cancel_reaches_a_run_on_a_worker_and_a_run_still_in_the_queue_and_resume_queue_sends_it_back(cli, fake, pool, isolated):
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
    again = cli("resume", running, "--queue", "--json")  # the cancelled run, continued by a worker
    assert again.code == 0 and again.json() == {"run_id": running, "status": "queued", "queue": "default"}
    wait_for(lambda: store.run(running).status == "completed", timeout=120, what="the resumed run completed on the worker")
    attempts = cli("runs", "show", running, "--json").json()["attempts"]
    assert [(a["kind"], a["status"]) for a in attempts] == [("run", "cancelled"), ("resume", "completed")]


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


UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


def prometheus_series(points: list[dict]) -> tuple[set[str], set[str]]:
    """The series and label names Prometheus has for these OTLP points, as the collector's prometheus exporter names
    them: dots to underscores, the unit as a suffix ({annotations} dropped, s -> seconds), counters with _total,
    histograms as _bucket/_sum/_count."""
    names, labels = set(), {"le"}
    for point in points:
        name = re.sub(r"[^a-zA-Z0-9_:]", "_", point["name"])
        unit = "" if point["unit"].startswith("{") else UNITS.get(point["unit"], point["unit"])
        name += f"_{unit}" if unit and not name.endswith(f"_{unit}") else ""
        suffixes = {"sum": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[point["kind"]]
        names |= {name + suffix for suffix in suffixes}
        labels |= {re.sub(r"[^a-zA-Z0-9_]", "_", key) for key in point["attributes"]}
    return names, labels


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel and alert rule."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "mamabear.json").read_text())
    found = [(f"panel '{p['title']}'", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    alerts = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    return found + [(f"alert {r['alert']}", r["expr"]) for g in alerts["groups"] for r in g["rules"]]


def test_every_dashboard_panel_and_alert_queries_only_series_a_worker_and_its_runs_export(cli, fake, pool, isolated, monkeypatch):
    from otlpreceiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        worker = pool("w1")
        up(cli, "w1")
        fake.add(status=500, times=1)  # one failed model call (then retried): the errors series
        first = queued(cli, "note", "otters", fake)
        store = store_for(isolated)
        wait_for(lambda: store.run(first).status == "completed", timeout=120, what="the first run")
        second = queued(cli, "note", "otters", fake)  # the same calls again: answered by the response cache (savings)
        wait_for(lambda: store.run(second).status == "completed", timeout=120, what="the second run")
        worker.terminate()  # its gauges are flushed as it stops
        worker.wait(timeout=60)
        names, labels = prometheus_series(receiver.metrics)
    assert {"mamabear_queue_depth", "mamabear_worker_busy", "mamabear_runs_total", "mamabear_cache_saved_USD_total", "mamabear_errors_total"} <= names
    for where, expr in queries():
        used_labels = {name.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for name in group.split(",")}
        used_labels |= {m for group in re.findall(r"\{([^}]*)\}", expr) for m in re.findall(r"(\w+)\s*[!=]~?", group)}
        bare = re.sub(r"\{[^}]*\}|by \([^)]*\)", "", expr)
        used = set(re.findall(r"\b((?:mamabear|gen_ai)_\w+)\b", bare))
        assert used and used <= names, f"{where} queries {sorted(used - names)}, which nothing exports"
        assert used_labels <= labels, f"{where} groups by {sorted(used_labels - labels)}, which no series has"
    titles = " | ".join(w for w, _ in queries()).lower()
    wanted = ("spend per hour by model", "by agent", "runs by status", "success rate", "p50 / p95", "errors", "cache savings", "queue depth", "busy workers")
    assert [w for w in wanted if w not in titles] == []


def test_a_queued_mission_is_carried_out_by_a_worker_with_its_step_limit(cli, fake, pool, isolated):
    from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER, create

    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", times=1, tool_calls=create("hi\n"))
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    pool("w1")
    up(cli, "w1")
    result = cli("mission", "leave a greeting in hello.txt", "--max-steps", "7", "--queue", "--base-url", fake.url, "--json")
    assert result.code == 0, result.err
    run_id = result.json()["run_id"]
    store = store_for(isolated)
    wait_for(lambda: store.run(run_id).status in ("completed", "failed"), timeout=180, what="the mission ended")
    run = store.run(run_id)
    assert (run.status, run.worker, run.options["max_steps"]) == ("completed", f"w1@{HOST}", 7), run.error
    state = [e for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "mission_state"][-1]["data"]
    assert state["max_steps"] == 7  # the limit it was queued with holds on the worker
    refused = cli("mission", "leave a greeting", "--queue", "--review-plan")
    assert refused.code == 2 and "--review-plan asks at a terminal and cannot with --queue" in refused.err


TWO_ITEMS = {
    "items": [
        {
            "id": name,
            "title": f"Write the {name} file",
            "specialist": "devops_specialist",
            "instructions": f"Create {name}.txt containing the word {name}.",
            "criteria": [{"kind": "command", "check": f"grep -q {name} {name}.txt"}],
        }
        for name in ("alpha", "beta")
    ]
}


def test_a_queued_missions_independent_items_run_on_both_workers_at_once(cli, fake, pool, isolated):
    """Each worker works on one thing at a time: the mission holds one, so its second item can only go to the other."""
    from test_mission_run import CONFIRM, PLANNER

    fake.add(contains=PLANNER, times=1, text=json.dumps(TWO_ITEMS))
    for name, delay in (("alpha", 20), ("beta", 0)):  # alpha's first answer takes 20 s: beta is done meanwhile, if at once
        write = [{"name": "file_create", "arguments": {"path": f"{name}.txt", "file_text": f"{name}\n"}}]
        fake.add(task=f"Write the {name} file", times=1, delay=delay, tool_calls=write)
        fake.add(task=f"Write the {name} file", times=1, text=f"Wrote {name}.txt.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "both files hold their word"}')
    pool("w1", concurrency=1)
    pool("w2", concurrency=1)
    up(cli, "w1", "w2")
    result = cli("mission", "leave two words", "--queue", "--base-url", fake.url, "--json")
    assert result.code == 0, result.err
    run_id = result.json()["run_id"]
    store = store_for(isolated)
    wait_for(lambda: store.run(run_id).status in ("completed", "failed", "interrupted"), timeout=240, what="the mission ended")
    run = store.run(run_id)
    assert run.status == "completed", (run.error, pool.log("w1")[-3000:], pool.log("w2")[-3000:])
    steps = {t.task: t for t in store.tasks(run_id)}
    assert list(steps) == ["plan v1", "alpha (try 1)", "beta (try 1)", "confirm the goal"]
    alpha, beta = steps["alpha (try 1)"], steps["beta (try 1)"]
    assert alpha.worker == run.worker and {alpha.worker, beta.worker} == {f"w1@{HOST}", f"w2@{HOST}"}  # one item on each worker
    assert alpha.started_at < beta.started_at < beta.finished_at < alpha.finished_at  # beta ran while alpha's step went on
    assert (alpha.llm_calls, beta.llm_calls) == (2, 2) and len(fake.chat_requests) == 6  # nothing asked twice
    doc = cli("runs", "show", run_id, "--json").json()
    assert [(t["task"], t["worker"]) for t in doc["tasks"]][1:3] == [("alpha (try 1)", alpha.worker), ("beta (try 1)", beta.worker)]
    sent = [e for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "mission_step_sent"]
    assert [e["data"]["item"] for e in sent] == ["alpha", "beta"]


def write(name: str) -> list[dict]:
    return [{"name": "file_create", "arguments": {"path": f"{name}.txt", "file_text": f"{name}\n"}}]


def step_process(run_id: str) -> int:
    """The pid of the `mamabear step RUN_ID ...` process a worker started."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"step" in argv and run_id.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no step process of run {run_id}")


def test_a_step_whose_machine_is_lost_is_done_again_by_the_mission_and_nothing_done_is_asked_again(cli, fake, pool, isolated):
    from test_mission_run import CONFIRM, PLANNER

    fake.add(contains=PLANNER, times=1, text=json.dumps(TWO_ITEMS))
    fake.add(task="Write the alpha file", times=1, delay=15, tool_calls=write("alpha"))  # the mission's own step
    fake.add(task="Write the alpha file", times=1, text="Wrote alpha.txt.")
    fake.add(task="Write the beta file", times=1, delay=120, text="never seen")  # on the other worker: lost then
    fake.add(task="Write the beta file", times=1, tool_calls=write("beta"))
    fake.add(task="Write the beta file", times=1, text="Wrote beta.txt.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "both files hold their word"}')
    workers = {"w1": pool("w1", concurrency=1), "w2": pool("w2", concurrency=1)}
    up(cli, "w1", "w2")
    run_id = cli("mission", "leave two words", "--queue", "--base-url", fake.url, "--json").json()["run_id"]
    wait_for(lambda: any("Write the beta file" in r["task"] for r in fake.chat_requests), timeout=120, what="beta's hanging call")
    store = store_for(isolated)
    holder, other = store.run(run_id).worker, next(t.worker for t in store.tasks(run_id) if t.task == "beta (try 1)")
    assert other != holder
    os.killpg(workers[other.split("@")[0]].pid, signal.SIGKILL)  # the worker,
    os.kill(step_process(run_id), signal.SIGKILL)  # and the step's process with it: nothing settles the step
    lost_at = time.time()
    wait_for(lambda: store.run(run_id).status in ("completed", "failed"), timeout=120, what="the mission ended")
    assert store.run(run_id).status == "completed", store.run(run_id).error
    steps = [(t.task, str(t.status), t.worker) for t in store.tasks(run_id)][1:4]
    assert steps == [("alpha (try 1)", "completed", holder), ("beta (try 1)", "interrupted", other), ("beta (try 1)", "completed", holder)]
    asked = Counter("plan" if PLANNER in r["text"] else "alpha" if "Write the alpha file" in r["task"] else "other" for r in fake.chat_requests)
    assert (asked["plan"], asked["alpha"]) == (1, 2)  # what was done is not asked again
    redone = [r for r in fake.chat_requests if "Write the beta file" in r["task"]][1]
    assert redone["time"] - lost_at <= 15 + STALE_S + 10  # after the mission's own step, once the heartbeat is stale (README)
    again = [e for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "mission_step_again"]
    assert len(again) == 1 and f"worker {other} stopped beating" in again[0]["message"]


def test_a_worker_refuses_a_broker_without_a_password_unless_told(cli, broker, monkeypatch):
    monkeypatch.setenv("MAMABEAR_BROKER_URL", broker.url)  # this test's Redis has none
    result = cli("worker", "--name", "w1")
    assert result.code == 2 and "has no password, so anyone who reaches it can take this pool's runs" in result.err
    assert "Traceback" not in result.err
    checks = {c["name"]: c for c in cli("doctor", "--json").json()["checks"]}
    assert checks["broker"]["status"] == "warn" and "has no password" in checks["broker"]["detail"], checks["broker"]
    with RedisServer(password="s3cret-broker") as guarded:
        monkeypatch.setenv("MAMABEAR_BROKER_URL", guarded.url)
        checks = {c["name"]: c for c in cli("doctor", "--json").json()["checks"]}
        assert checks["broker"]["status"] == "ok" and "s3cret-broker" not in str(checks), checks["broker"]
