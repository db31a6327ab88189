"""Provider faults, budgets and time limits, through the CLI against the scripted model server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamabear.config.limits import Limits, parse_duration
from mamabear.config.models import RetryPolicy
from mamabear.errors import UsageError
from mamabear.llm.resilience import backoff
from mamabear.store.database import Store

TOPIC = ["-i", "topic=honey bees"]
RESEARCH, CHECK, WRITE = "Current Task: Research", "Current Task: Check every claim", "Current Task: Write a report"


def store_for(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def local_models(text: str) -> None:
    """A config/models.yaml in the working directory, merged over the packaged one."""
    Path("config").mkdir(exist_ok=True)
    Path("config/models.yaml").write_text(text)


def for_task(fake, marker: str) -> list[dict]:
    return [r for r in fake.chat_requests if marker in r["task"]]


def run(cli, fake, *extra: str):
    return cli("run", "research", *TOPIC, "--base-url", fake.url, "--json", "--quiet", *extra)


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400), ("1h30m", 5400), ("2.5", 2.5), ("1d", 86400)])
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5s", "0", "5s5"])
def test_bad_durations_are_one_sentence(text):
    with pytest.raises(UsageError, match="--max-duration"):
        parse_duration(text)


def test_backoff_grows_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=10.0)
    assert [backoff(n, policy, None, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert [backoff(n, policy, None, rand=lambda: 0.0) for n in (1, 2)] == [0.5, 1.0]
    assert backoff(1, policy, 7.0) == 7.0
    assert backoff(1, policy, 3600.0) == 10.0  # a provider's ask is capped too


def test_limits_reject_non_positive_budgets():
    with pytest.raises(UsageError, match="--budget-usd"):
        Limits(budget_usd=0)
    assert Limits(budget_usd=1.0).overridden(budget_usd=None, max_duration_s=60).to_dict() == {"budget_usd": 1.0, "max_duration_s": 60}


def test_bad_retry_config_names_file_and_line(cli):
    local_models("retry:\n  attempts: 3\n  patience: 9\n")
    result = cli("run", "research", *TOPIC, "--dry-run")
    assert result.code == 2
    assert "config/models.yaml:3" in result.err and "patience" in result.err


# ---------------------------------------------------------------- provider faults


def test_rate_limit_is_retried_after_the_wait_the_provider_asked_for(cli, fake, isolated):
    local_models("retry: {backoff_s: 0.01}\n")
    fake.add(task=CHECK, status=429, headers={"Retry-After": "1"}, times=1)
    result = run(cli, fake)
    assert result.code == 0, result.err
    tries = for_task(fake, CHECK)
    assert [r["status"] for r in tries] == [429, 200]
    assert tries[1]["time"] - tries[0]["time"] >= 1.0  # Retry-After, not our 10 ms backoff
    calls = [c for c in store_for(isolated).llm_calls(result.json()["run_id"]) if c["task_position"] == 2]
    assert [c["outcome"] for c in calls] == ["error", "ok"] and "429" in calls[0]["error"]
    events = cli("runs", "logs", result.json()["run_id"], "--json").json()
    assert any(e["kind"] == "llm_retry" and e["task_position"] == 2 for e in events)


def test_server_errors_timeouts_and_dropped_connections_are_retried(cli, fake, isolated):
    local_models("retry: {backoff_s: 0.01, timeout_s: 1}\n")
    fake.add(task=RESEARCH, status=500, times=1)
    fake.add(task=CHECK, drop=True, times=1)
    fake.add(task=WRITE, delay=3, times=1)  # longer than the 1 s request timeout
    result = run(cli, fake)
    assert result.code == 0, result.err
    assert [len(for_task(fake, m)) for m in (RESEARCH, CHECK, WRITE)] == [2, 2, 2]
    calls = store_for(isolated).llm_calls(result.json()["run_id"])
    assert [(c["task_position"], c["outcome"]) for c in calls] == [(1, "error"), (1, "ok"), (2, "error"), (2, "ok"), (3, "error"), (3, "ok")]
    assert result.json()["status"] == "completed"


def test_after_its_attempts_a_call_falls_back_to_the_next_model(cli, fake, isolated):
    local_models(
        "retry: {attempts: 2, backoff_s: 0.01}\n"
        "tiers:\n  fast: [openai/model-a, openai/model-b]\n  balanced: [openai/model-a, openai/model-b]\n"
        "  pro: [openai/model-a, openai/model-b]\n"
    )
    fake.add(model="model-a", status=503)
    result = run(cli, fake)
    assert result.code == 0, result.err
    assert [r["model"] for r in for_task(fake, RESEARCH)] == ["model-a", "model-a", "model-b"]
    assert len(fake.chat_requests) == 9
    calls = store_for(isolated).llm_calls(result.json()["run_id"])
    assert {(c["model"], c["outcome"]) for c in calls} == {("openai/model-a", "error"), ("openai/model-b", "ok")}
    assert len(calls) == 9


def test_a_task_that_keeps_failing_is_retried_with_the_error_then_the_run_fails_resumably(cli, fake, isolated):
    local_models("retry: {attempts: 1, backoff_s: 0.01, task_retries: 1}\n")
    fake.add(task=CHECK, status=500)
    result = run(cli, fake)
    assert result.code == 1
    doc = result.json()
    assert doc["status"] == "failed" and doc["error"].startswith("task 2 fact_check failed: ")
    assert [t["status"] for t in doc["tasks"]] == ["completed", "failed", "pending"]
    first, retry = for_task(fake, CHECK)
    assert "previous attempt" not in first["text"]
    assert "a previous attempt at this task failed with this error" in retry["text"] and "500" in retry["text"]
    assert "mamabear resume" in result.err

    fake.reset()  # the provider recovers
    resumed = cli("resume", doc["run_id"], "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    again = resumed.json()
    assert again["run_id"] == doc["run_id"] and again["status"] == "completed"
    assert for_task(fake, RESEARCH) == [] and len(fake.chat_requests) == 2  # task 1 is not run again
    assert [t["status"] for t in again["tasks"]] == ["completed"] * 3
    assert [(a["number"], a["kind"], a["status"]) for a in again["attempts"]] == [(1, "run", "failed"), (2, "resume", "completed")]
    assert again["totals"]["llm_calls"] == 5  # 1 + 2 failed + 2 resumed: every call of both attempts


# ---------------------------------------------------------------- budgets and time


def test_token_budget_stops_before_the_next_call_and_resume_with_more_continues(cli, fake, isolated):
    result = run(cli, fake, "--budget-tokens", "1")
    assert result.code == 3
    doc = result.json()
    assert doc["status"] == "budget_exhausted" and "token budget" in doc["error"]
    assert len(fake.chat_requests) == 1  # the call that spent it; no call started after
    assert [t["status"] for t in doc["tasks"]] == ["completed", "budget_exhausted", "pending"]

    again = cli("resume", doc["run_id"], "--json", "--quiet")  # the same budget: still spent, no call made
    assert again.code == 3 and len(fake.chat_requests) == 1

    done = cli("resume", doc["run_id"], "--budget-tokens", "1000000", "--json", "--quiet")
    assert done.code == 0, done.err
    assert len(fake.chat_requests) == 3 and for_task(fake, RESEARCH)[0] is fake.chat_requests[0]
    assert done.json()["status"] == "completed"


def test_dollar_budget_uses_price_overrides(cli, fake):
    local_models("prices:\n  openai/gpt-4.1: {input: 1000, output: 1000}\n  openai/gpt-4.1-mini: {input: 1000, output: 1000}\n")
    result = run(cli, fake, "--budget-usd", "0.01")
    assert result.code == 3
    doc = result.json()
    assert doc["status"] == "budget_exhausted" and "budget" in doc["error"] and "$" in doc["error"]
    assert len(fake.chat_requests) == 1 and doc["totals"]["cost_usd"] >= 0.01


def test_time_limit_stops_at_the_next_step_and_resume_takes_a_new_limit(cli, fake):
    fake.add(delay=2.0, times=2)
    result = run(cli, fake, "--max-duration", "3s")
    assert result.code == 4
    doc = result.json()
    assert doc["status"] == "time_limit" and "time limit" in doc["error"]
    assert len(fake.chat_requests) == 2  # the call running at 3 s finished; the next one never started

    done = cli("resume", doc["run_id"], "--max-duration", "1h", "--json", "--quiet")
    assert done.code == 0, done.err
    assert len(fake.chat_requests) == 3 and WRITE in fake.chat_requests[-1]["task"]


def test_bad_limit_flags_are_exit_2(cli, fake):
    assert cli("run", "research", *TOPIC, "--max-duration", "soon").code == 2
    assert cli("run", "research", *TOPIC, "--budget-usd", "-1").code == 2
    result = cli("resume", "nope")
    assert result.code == 2 and "no run with id 'nope'" in result.err


def test_a_completed_run_cannot_be_resumed(cli, fake):
    doc = run(cli, fake).json()
    result = cli("resume", doc["run_id"])
    assert result.code == 2 and "completed" in result.err


def test_checkpoints_hold_no_key_and_a_resume_uses_the_real_one(cli, fake, isolated, monkeypatch):
    secret = "sk-test-9d8c7b6a5f4e3d2c1b0a"
    monkeypatch.setenv("MAMABEAR_API_KEY", secret)
    result = run(cli, fake, "--budget-tokens", "1")
    assert result.code == 3
    run_id = result.json()["run_id"]
    files = list((isolated / "checkpoints" / run_id).glob("*/*.json"))
    assert files and all(secret not in f.read_text() and "${MAMABEAR_API_KEY}" in f.read_text() for f in files)  # a reference

    fake.reset()
    assert cli("resume", run_id, "--budget-tokens", "100000000", "--quiet").code == 0
    assert fake.chat_requests and all(r["headers"]["Authorization"] == f"Bearer {secret}" for r in fake.chat_requests)
