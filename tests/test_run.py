"""Real crew runs over HTTP against the scripted model server, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env
from mamabear.store.database import Store

CREW_INPUTS = {
    "research": ["-i", "topic=honey bees"],
    "development": ["-i", "goal=a weather CLI", "-i", "stack=go"],
    "data_analysis": ["-i", "question=do bears like honey"],
    "full_team": ["-i", "mission=find the honey"],
}


def store_for(home) -> Store:
    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


@pytest.mark.parametrize("crew", sorted(CREW_INPUTS))
def test_every_packaged_crew_runs_end_to_end(cli, fake, isolated, crew):
    result = cli("run", crew, *CREW_INPUTS[crew], "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["status"] == "completed" and doc["crew"] == crew and doc["error"] is None
    assert doc["output"] and doc["output"] == doc["tasks"][-1]["output"]
    for task in doc["tasks"]:
        assert task["status"] == "completed" and task["output"]
        assert task["llm_calls"] >= 1 and task["tokens_in"] > 0 and task["tokens_out"] > 0
        assert task["cost_usd"] > 0 and task["seconds"] is not None
        assert set(task) >= {"position", "task", "agent", "model", "status", "output", "tokens_in", "tokens_out", "cost_usd", "seconds"}

    # The store holds exactly the calls the server answered, with the usage it reported.
    served = [r for r in fake.chat_requests if r["status"] == 200]
    calls = store_for(isolated).llm_calls(doc["run_id"])
    assert len(calls) == len(served) == doc["totals"]["llm_calls"]
    assert sum(c["tokens_in"] for c in calls) == sum(r["usage"]["prompt_tokens"] for r in served) == doc["totals"]["tokens_in"]
    assert sum(c["tokens_out"] for c in calls) == sum(r["usage"]["completion_tokens"] for r in served)
    assert all(c["outcome"] == "ok" and c["latency_ms"] is not None for c in calls)
    assert {r["model"] for r in served} <= {"gpt-4.1", "gpt-4.1-mini"}


def test_inputs_reach_the_prompts(cli, fake):
    result = cli("run", "development", *CREW_INPUTS["development"], "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0
    first = fake.chat_requests[0]["text"]
    assert "a weather CLI" in first and "stack: go" in first
    # prepare_environment has complexity 3 -> fast tier; implement_solution 8 -> pro tier.
    by_task = {t["task"]: t["model"] for t in result.json()["tasks"]}
    assert by_task["prepare_environment"] == "openai/gpt-4.1-mini"
    assert by_task["implement_solution"] == "openai/gpt-4.1"


def test_hierarchical_manager_delegates_and_the_work_is_recorded(cli, fake, isolated):
    fake.add(
        contains="Plan the mission",
        times=1,
        tool_calls=[
            {
                "name": "delegate_work_to_coworker",
                "arguments": {"task": "Survey the bear dens", "context": "we need honey", "coworker": "Research Specialist"},
            }
        ],
    )
    result = cli("run", "full_team", *CREW_INPUTS["full_team"], "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    systems = [r["body"]["messages"][0]["content"] for r in fake.chat_requests]
    assert any(s.startswith("You are Research Specialist") for s in systems)
    store = store_for(isolated)
    run_id = result.json()["run_id"]
    tools = store.tool_calls(run_id)
    assert len(tools) == 1 and tools[0]["ok"] and tools[0]["agent"] == "scout_commander" and tools[0]["task_position"] == 1
    assert "Survey the bear dens" in tools[0]["arguments"]
    agents = {(c["agent"], c["task_position"]) for c in store.llm_calls(run_id)}
    assert ("research_specialist", 1) in agents and ("scout_commander", 1) in agents


def test_run_as_a_subprocess_prints_one_json_document_and_plain_progress(fake, isolated):
    proc = subprocess.run(
        [sys.executable, "-m", "mamabear", "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json"],
        capture_output=True,
        text=True,
        env=subprocess_env(MAMABEAR_HOME=str(isolated)),
        cwd=REPO,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout is one document
    assert doc["status"] == "completed" and len(doc["tasks"]) == 3
    lines = proc.stderr.strip().splitlines()
    assert any("task 1/3 research_topic started" in line for line in lines)
    assert any("task 3/3 write_report completed" in line for line in lines)
    assert lines[-1].split(" (")[0].endswith(f"run {doc['run_id']} completed")
    assert "\x1b[" not in proc.stderr  # no colour or live redraws when not a terminal


def test_plain_output_is_the_final_result_on_stdout(cli, fake):
    fake.add(contains="Write a report", text="# Otter report\nOtters hold hands.")
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    assert result.code == 0
    assert result.out == "# Otter report\nOtters hold hands.\n"


def test_runs_list_show_and_logs_read_back_the_run(cli, fake):
    run = cli("run", "research", "-i", "topic=owls", "--base-url", fake.url, "--json", "--quiet").json()
    listed = cli("runs", "list", "--json").json()
    assert listed[0]["id"] == run["run_id"] and listed[0]["status"] == "completed"
    assert listed[0]["llm_calls"] == run["totals"]["llm_calls"] and listed[0]["tokens_in"] == run["totals"]["tokens_in"]
    shown = cli("runs", "show", run["run_id"][-9:], "--json")  # a unique suffix is not a prefix...
    assert shown.code == 2
    shown = cli("runs", "show", run["run_id"], "--json").json()
    assert shown["tasks"] == run["tasks"] and len(shown["llm_calls"]) == run["totals"]["llm_calls"]
    events = cli("runs", "logs", run["run_id"], "--json").json()
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("task_completed") == 3 and kinds.count("llm_call") == 3
    text = cli("runs", "show", run["run_id"])
    assert text.code == 0 and "write_report" in text.out and "LLM calls" in text.out
    followed = cli("runs", "logs", run["run_id"], "--follow")
    assert followed.code == 0 and followed.out.strip().splitlines()[-1].split(" (")[0].endswith("completed")


def test_unreachable_provider_is_exit_2_naming_the_task_and_the_run_is_kept(cli, isolated):
    result = cli("run", "research", "-i", "topic=x", "--base-url", "http://127.0.0.1:9/v1", "--json", "--quiet")
    assert result.code == 2
    doc = result.json()
    assert doc["status"] == "failed"
    assert doc["error"].startswith("task 1 research_topic failed: cannot reach the model provider")
    assert "Traceback" not in result.err and "check --base-url" in result.err
    assert store_for(isolated).run(doc["run_id"]).status == "failed"


def test_provider_rejecting_the_request_fails_the_run_with_exit_1(cli, fake):
    fake.add(contains="Check every claim", status=400)
    result = cli("run", "research", "-i", "topic=x", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 1
    doc = result.json()
    assert doc["status"] == "failed" and doc["error"].startswith("task 2 fact_check failed")
    assert [t["status"] for t in doc["tasks"]] == ["completed", "failed", "pending"]
    assert doc["totals"]["llm_errors"] >= 1


def test_secrets_never_reach_the_store(cli, fake, isolated, monkeypatch):
    secret = "sk-test-5f3c9a1b7e2d4c6a8b0e"
    monkeypatch.setenv("MAMABEAR_API_KEY", secret)
    fake.add(text=f"I found the key {secret} in the environment.")
    result = cli("run", "research", "-i", "topic=x", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0
    assert all(r["headers"].get("Authorization") == f"Bearer {secret}" for r in fake.chat_requests)  # it was really used
    assert secret not in result.out and "[REDACTED]" in result.out
    raw = (isolated / "mamabear.db").read_bytes() + b"".join(p.read_bytes() for p in isolated.glob("mamabear.db-wal"))
    assert secret.encode() not in raw


def test_a_one_task_crew_reads_as_one_task_and_one_call(cli, fake):
    from pathlib import Path

    (Path.cwd() / "crews").mkdir()
    (Path.cwd() / "crews" / "solo.yaml").write_text(
        "description: one task\nagents: [research_specialist]\ntasks: [research_topic]\ninputs:\n  - name: topic\n  - name: audience\n    default: engineers\n"
    )
    result = cli("run", "solo", "-i", "topic=otters", "--base-url", fake.url)
    assert result.code == 0, result.err
    assert "started (1 task, sequential)" in result.err and ", 1 model call, " in result.err


def test_a_providers_key_never_goes_to_a_base_url_server(cli, fake, monkeypatch):
    secret = "sk-live-do-not-send-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    assert cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet").code == 0
    assert cli("doctor", "--base-url", fake.url).code == 0
    sent = [r["headers"].get("Authorization", "") for r in fake.requests]
    assert sent and not any(secret in header for header in sent)  # 35 of 35 requests carried it on 4d96280
    monkeypatch.setenv("MAMABEAR_API_KEY", "server-key-1")
    before = len(fake.requests)
    assert cli("run", "research", "-i", "topic=bees", "--base-url", fake.url, "--quiet", "--no-cache").code == 0
    assert {r["headers"].get("Authorization") for r in fake.requests[before:]} == {"Bearer server-key-1"}
