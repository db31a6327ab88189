"""What a run writes on stderr in each mode: one line per event, in order, one per model call, no library warnings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env
from redisserver import RedisServer

pytestmark = pytest.mark.memory_on  # memory makes model calls of its own: they must read like the agents'


@pytest.fixture(autouse=True)
def memory_that_calls_models(isolated, tmp_path, monkeypatch):  # noqa: ANN001
    """memory.yaml's analysis: model (CrewAI's way; the default makes no memory call): these tests read those calls."""
    root = tmp_path / "memory-analysis"
    (root / "config").mkdir(parents=True)
    (root / "config" / "memory.yaml").write_text("analysis: model\n")
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(root))


def mamabear(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mamabear", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        env=subprocess_env(MAMABEAR_HOME=str(home), MAMABEAR_CONFIG_DIR=os.environ["MAMABEAR_CONFIG_DIR"]),
    )


def test_plain_progress_is_one_line_per_event_in_order_and_a_failed_call_counts_once(fake, isolated):
    fake.add(task="Research", status=500, times=1)  # the first call fails (retried); CrewAI reports it twice
    done = mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    line = re.compile(r"^\d\d:\d\d:\d\d \d{6}-\d{6}-[0-9a-f]{4} \S")
    assert lines and all(line.match(x) for x in lines), done.stderr  # no warnings, no glued or continued lines
    assert "Pydantic" not in done.stderr and "Warning" not in done.stderr
    failed = [x for x in lines if "failed: " in x and "<-" in x and "research_specialist" in x]
    assert len(failed) == 1, failed
    order = [m.group(1, 2) for m in (re.search(r"task (\d)/3 \S+ (started|completed)", x) for x in lines) if m]
    assert order == [(str(n), what) for n in (1, 2, 3) for what in ("started", "completed")]

    run_id = re.search(r"run (\S+) completed \(\S+, (\d+) model calls", lines[-1])
    assert run_id, lines[-1]
    listed = json.loads(mamabear(isolated, "runs", "list", "--json").stdout)[0]
    assert listed["llm_calls"] == int(run_id.group(2))  # the summary and the store agree
    calls = json.loads(mamabear(isolated, "runs", "show", run_id.group(1), "--json").stdout)["llm_calls"]
    assert sum(c["outcome"] == "error" for c in calls) - sum("validation error" in (c["error"] or "") for c in calls) == 1
    assert {c["agent"] for c in calls} == {"research_specialist", "memory"}  # the memory's own calls, named as such
    assert {c["model"] for c in calls} == {"openai/gpt-4.1"}  # one id for one model
    assert all(c["task_position"] for c in calls)  # memory work is attributed to the task it served
    spans = [json.loads(x) for x in (isolated / "traces" / f"{run_id.group(1)}.jsonl").read_text().splitlines()]
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert len(chats) == len(calls) and len({s["span_id"] for s in chats}) == len(chats)  # one span per call


def test_answers_from_the_cache_are_attributed_like_calls(fake, tmp_path):
    # Two homes (two empty memories, so the same prompts) sharing one Redis response cache: the second run is answered from it,
    # the memory's extraction calls included (answered here with valid JSON, so that they succeed and are cached).
    fake.add(contains="You extract discrete, reusable memory statements", text=json.dumps({"memories": ["Otters use rocks as tools."]}))
    with RedisServer() as redis:
        for name in ("first", "second"):
            home = tmp_path / name
            done = subprocess.run(
                [sys.executable, "-m", "mamabear", "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet"],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=180,
                env=subprocess_env(MAMABEAR_HOME=str(home), MAMABEAR_CACHE_URL=redis.url, MAMABEAR_CONFIG_DIR=os.environ["MAMABEAR_CONFIG_DIR"]),
            )
            assert done.returncode == 0, done.stderr
    calls = json.loads(mamabear(home, "runs", "show", json.loads(done.stdout)["run_id"], "--json").stdout)["llm_calls"]
    hits = [c for c in calls if c["cache_hit"]]
    assert hits and {c["agent"] for c in hits} == {"research_specialist", "memory"}
    assert {c["model"] for c in hits} == {"openai/gpt-4.1"}


def test_a_runs_time_is_the_commands_time_everywhere(fake, isolated):
    started = time.time()
    done = mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    wall = time.time() - started
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    seconds = doc["totals"]["seconds"]
    # From the process's start (imports, memory, set-up: several seconds, which the store used to leave out) to the run's end,
    # less printing the result; /proc gives the start to 10 ms.
    assert wall - 2.0 < seconds <= wall + 0.05
    listed = json.loads(mamabear(isolated, "runs", "list", "--json").stdout)[0]
    assert listed["seconds"] == pytest.approx(seconds, abs=0.01)
    spans = [json.loads(x) for x in (isolated / "traces" / f"{doc['run_id']}.jsonl").read_text().splitlines()]
    root = next(s for s in spans if s["name"].startswith("crew "))
    assert root["end"] - root["start"] == pytest.approx(seconds, abs=0.5)


@pytest.mark.parametrize("mode", [["--quiet"], ["--json", "--quiet"], ["--json"]])
def test_quiet_and_json_modes_write_nothing_else(fake, isolated, mode):
    done = mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, *mode)
    assert done.returncode == 0, done.stderr
    if "--quiet" in mode:
        assert done.stderr == ""
    else:
        assert all(re.match(r"^\d\d:\d\d:\d\d ", x) for x in done.stderr.splitlines()), done.stderr
    if "--json" in mode:
        assert json.loads(done.stdout)["status"] == "completed"
