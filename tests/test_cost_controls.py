"""Spending less for the same work, in real runs: the response cache (SQLite and Redis) and machine-wide quotas."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise

import pytest

import quotabookings
from conftest import REPO, subprocess_env
from redisserver import RedisServer
from test_sandbox_crew import project_with

RESEARCH = ["research", "-i", "topic=bees", "--no-memory"]  # new memories would change the next run's prompts


@pytest.fixture(scope="module")
def redis_url():
    with RedisServer() as server:
        yield server.url


def test_a_second_identical_run_is_answered_from_the_cache_without_one_request(cli, fake):
    first = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert first.code == 0, first.err
    sent = len(fake.chat_requests)
    assert sent == first.json()["totals"]["llm_calls"] == 3

    second = cli("run", *RESEARCH, "--base-url", fake.url)
    assert second.code == 0, second.err
    assert len(fake.chat_requests) == sent  # not one request reached the model server
    assert second.out == first.json()["output"] + "\n"
    assert "3 answered from the cache, $0.0018 saved" in second.err  # the summary line of the plain progress view

    run_id = cli("runs", "list", "--json").json()[0]["id"]
    doc = cli("runs", "show", run_id, "--json").json()
    cost = first.json()["totals"]["cost_usd"]
    assert doc["totals"]["cache_hits"] == doc["totals"]["llm_calls"] == 3
    assert doc["totals"]["cost_usd"] == 0 and doc["totals"]["saved_usd"] == pytest.approx(cost)
    assert [t["status"] for t in doc["tasks"]] == ["completed"] * 3 and all(t["llm_calls"] == 1 for t in doc["tasks"])
    assert doc["cost_by"]["agent"] == [
        {
            "agent": "research_specialist",
            "llm_calls": 3,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
            "cache_hits": 3,
            "saved_usd": pytest.approx(cost),
            "errors": 0,
            "unpriced_calls": 0,
        }
    ]
    shown = cli("runs", "show", run_id).out
    assert "cached" in shown and "response cache: 3 hits, $0.0018 saved" in shown
    assert "llm_cache_hit" in cli("runs", "logs", run_id, "--json").out
    stats = cli("stats", "--json").json()
    assert stats["llm"]["cache_hits"] == 3 and stats["llm"]["saved_usd"] == pytest.approx(cost)


def test_no_cache_sends_every_request_and_a_resume_keeps_the_choice(cli, fake, monkeypatch):
    assert cli("run", *RESEARCH, "--base-url", fake.url, "--quiet").code == 0
    again = cli("run", *RESEARCH, "--base-url", fake.url, "--no-cache", "--json", "--quiet")
    assert again.code == 0 and again.json()["totals"]["cache_hits"] == 0 and len(fake.chat_requests) == 6

    monkeypatch.setenv("MAMABEAR_NO_CACHE", "1")
    assert cli("run", *RESEARCH, "--base-url", fake.url, "--quiet").code == 0
    assert len(fake.chat_requests) == 9

    monkeypatch.delenv("MAMABEAR_NO_CACHE")
    fake.add(task="Check every claim", status=400, times=2)
    failed = cli("run", *RESEARCH, "--base-url", fake.url, "--no-cache", "--json", "--quiet")
    assert failed.code == 1
    before = len(fake.chat_requests)
    resumed = cli("resume", failed.json()["run_id"], "--json", "--quiet")
    assert resumed.code == 0 and resumed.json()["totals"]["cache_hits"] == 0
    assert len(fake.chat_requests) == before + 2  # fact_check and write_report asked the model, though both were cached


def test_a_redis_cache_is_shared_between_machines(cli, fake, isolated, monkeypatch, redis_url, tmp_path):
    monkeypatch.setenv("MAMABEAR_CACHE_URL", redis_url)
    assert cli("run", *RESEARCH, "--base-url", fake.url, "--quiet").code == 0
    sent = len(fake.chat_requests)
    monkeypatch.setenv("MAMABEAR_HOME", str(tmp_path / "another-machine"))  # its own run store and no local cache
    second = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert second.code == 0 and second.json()["totals"]["cache_hits"] == 3
    assert len(fake.chat_requests) == sent
    assert not (tmp_path / "another-machine" / "cache.db").exists()


def test_an_unreachable_redis_is_exit_2_before_the_run_starts(cli, fake, monkeypatch):
    monkeypatch.setenv("MAMABEAR_CACHE_URL", "redis://:s3cret-pass@127.0.0.1:9/0")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--quiet")
    assert result.code == 2 and "cannot reach the response cache" in result.err and "--no-cache" in result.err
    assert "s3cret-pass" not in result.err and fake.chat_requests == [] and cli("runs", "list", "--json").json() == []


def test_cache_settings_in_models_yaml(cli, fake, monkeypatch, tmp_path):
    project = project_with(tmp_path, monkeypatch, config__models_yaml="cache:\n  enabled: false\n")
    for _ in range(2):
        assert cli("run", *RESEARCH, "--base-url", fake.url, "--quiet").code == 0
    assert len(fake.chat_requests) == 6
    (project / "config" / "models.yaml").write_text("cache:\n  ttl: 1 week\n")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--quiet")
    assert result.code == 2 and "models.yaml:2" in result.err and "write a duration" in result.err


def test_a_provider_quota_spaces_requests_and_the_wait_is_visible(cli, fake, monkeypatch, tmp_path):
    project_with(tmp_path, monkeypatch, config__models_yaml="providers:\n  openai:\n    env: [OPENAI_API_KEY]\n    rpm: 120\n")
    quotabookings.record(tmp_path / "bookings", monkeypatch.setattr)
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--no-cache")
    assert result.code == 0, result.err
    assert_spaced(quotabookings.bookings(tmp_path / "bookings"), [r["time"] for r in fake.chat_requests], 3)
    assert "for the openai quota: 120 requests/min" in result.err  # the plain progress view says why it waits
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    waits = json.loads(cli("runs", "logs", run_id, "--json").out)
    assert any(e["kind"] == "quota_wait" for e in waits)


def test_the_quota_holds_across_runs_running_at_once(fake, isolated, tmp_path):
    project = tmp_path / "project" / "config"
    project.mkdir(parents=True)
    (project / "models.yaml").write_text("providers:\n  openai:\n    env: [OPENAI_API_KEY]\n    rpm: 120\n")
    env = subprocess_env(MAMABEAR_HOME=str(isolated), MAMABEAR_CONFIG_DIR=str(project.parent))
    log = tmp_path / "bookings"
    run = f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); import quotabookings; quotabookings.run_cli(*sys.argv[1:])"
    args = [sys.executable, "-c", run, str(log), "run", *RESEARCH, "--base-url", fake.url, "--no-cache", "--quiet", "--json"]
    procs = [subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    assert_spaced(quotabookings.bookings(log), [r["time"] for r in fake.chat_requests], 6)


def assert_spaced(booked: list[float], arrived: list[float], count: int, interval: float = 60 / 120) -> None:
    """What the quota promises: its bookings (stamped inside the quota file's lock) are at least 60/rpm apart, however
    many processes book. When a request then reaches the server is up to the process and the machine's load (a cold
    process builds its HTTP client on its first call), so arrivals are only checked to come after their bookings: each
    request is sent after its own booking, hence the k-th arrival is never before the k-th booking."""
    assert len(booked) == len(arrived) == count, (booked, arrived)
    assert min(b - a for a, b in pairwise(booked)) >= interval - 1e-4, booked  # 1e-4: float rounding of time.time()
    assert all(a >= b for b, a in zip(booked, sorted(arrived), strict=True)), (booked, arrived)


def test_a_bad_quota_names_its_line(cli, monkeypatch, tmp_path):
    project_with(tmp_path, monkeypatch, config__models_yaml="providers:\n  openai:\n    env: [OPENAI_API_KEY]\n    tpm: -5\n")
    result = cli("validate")
    assert result.code == 2 and "models.yaml:4" in result.err and "'providers.openai.tpm' must be a number above zero" in result.err


def test_prompt_cached_input_tokens_are_recorded_and_priced_at_the_cached_rate(cli, fake):
    fake.add(task="Research", cached_tokens=100)
    doc = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet").json()
    first = next(c for c in cli("runs", "show", doc["run_id"], "--json").json()["llm_calls"] if c["task_position"] == 1)
    assert first["cached_tokens"] == 100 and first["model"] == "openai/gpt-4.1"
    # gpt-4.1: $2 per million input tokens, $0.50 per million cached, $8 per million output (litellm's cost map)
    assert first["cost_usd"] == pytest.approx((first["tokens_in"] - 100) * 2e-6 + 100 * 0.5e-6 + first["tokens_out"] * 8e-6)
    assert doc["totals"]["prompt_cached_tokens"] == 100
    assert "provider prompt cache: 100 input tokens" in cli("runs", "show", doc["run_id"]).out
    chat = next(
        s for s in cli("runs", "trace", doc["run_id"], "--json").json() if s["attributes"].get("mamabear.task.position") == 1 and s["name"].startswith("chat ")
    )
    assert chat["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 100


def test_a_budget_stop_and_runs_show_count_the_same_spend_with_prompt_caching(cli, fake):
    fake.add(task="Research", cached_tokens=150)
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--budget-usd", "0.00001", "--json", "--quiet")
    assert result.code == 3, result.err
    doc = result.json()
    spent = float(doc["error"].split("spent $")[1].split(" ")[0])
    assert doc["totals"]["prompt_cached_tokens"] == 150
    assert spent == pytest.approx(doc["totals"]["cost_usd"], abs=5e-5)  # 4d96280: the guard priced cached tokens in full
