"""A model server that goes away mid-run (a restart, an outage) is waited for up to ``retry.outage_wait``; through the
CLI against a scripted model server of the test's own that really stops listening (connection refused) and restarts
on the same port."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from fakellm import FakeLLM
from mamabear.config.models import ModelTable, RetryPolicy
from mamabear.llm import resilience
from mamabear.llm.resilience import is_outage, is_transient

TOPIC = ["-i", "topic=honey bees"]
RESEARCH, CHECK, WRITE = "Current Task: Research", "Current Task: Check every claim", "Current Task: Write a report"
TASKS = (RESEARCH, CHECK, WRITE)


@pytest.fixture
def server():
    """A scripted model server of this test's own: ``down()`` closes its port, ``up()`` listens on it again."""
    fake = FakeLLM().start()
    yield fake
    fake.stop()


def local_models(text: str) -> None:
    Path("config").mkdir(exist_ok=True)
    Path("config/models.yaml").write_text(text)


def run(cli, server, *extra: str):
    return cli("run", "research", *TOPIC, "--base-url", server.url, "--json", "--quiet", *extra)


def timed_run(cli, server):  # noqa: ANN001, ANN201 - the fixtures; (the CLI's Result, the seconds it took)
    started = time.monotonic()
    result = run(cli, server)
    return result, time.monotonic() - started


def answered(server, task: str) -> list[dict]:
    return [r for r in server.chat_requests if task in r["task"] and r["status"] == 200]


def events(cli, run_id: str, kind: str) -> list[dict]:
    return [e for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == kind]


def down_after_first_answer(server, for_s: float | None) -> threading.Event:
    """The server answers the run's first call, then goes away: for ``for_s`` seconds (then it restarts on the same
    port), or for good (None). The event is set once it is back."""
    back = threading.Event()

    def outage() -> None:
        server.down()
        if for_s is None:
            return
        time.sleep(for_s)
        server.up()
        back.set()

    server.add(times=1, then=outage)
    return back


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("value, seconds", [(0, 0.0), (5, 5.0), (2.5, 2.5), ("0", 0.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0)])
def test_outage_wait_takes_seconds_or_a_duration(value, seconds):
    assert RetryPolicy(outage_wait=value).outage_wait_s == seconds


def test_outage_wait_is_ten_minutes_unless_set():
    assert RetryPolicy().outage_wait_s == 600.0
    assert ModelTable.load([Path(__file__).resolve().parents[1]]).retry.outage_wait_s == 600.0  # the packaged models.yaml


@pytest.mark.parametrize("text", ["-5", "soon", "true", "'-1s'"])
def test_a_bad_outage_wait_names_file_and_line(cli, text):
    local_models(f"retry:\n  attempts: 3\n  outage_wait: {text}\n")
    result = cli("run", "research", *TOPIC, "--dry-run")
    assert result.code == 2
    assert "config/models.yaml:3" in result.err and "outage_wait" in result.err and "Traceback" not in result.err


def _status_error(status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": f"scripted {status}"}})
    return openai.APIStatusError(f"Error code: {status}", response=response, body=None)


def test_outages_are_refused_dropped_or_silent_servers_and_gateways_saying_so():
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")
    assert is_outage(openai.APIConnectionError(request=request))  # refused, dropped
    assert is_outage(openai.APITimeoutError(request=request))
    assert is_outage(ConnectionRefusedError(111, "Connection refused"))
    assert all(is_outage(_status_error(s)) for s in (502, 503, 504))
    for status in (429, 500, 529, 400):  # a rate limit, a server that answers with an error, a refused request
        assert not is_outage(_status_error(status))
    assert is_transient(_status_error(429)) and is_transient(_status_error(500))  # still retried as before


# ---------------------------------------------------------------- through the CLI


def test_a_server_restart_mid_run_is_ridden_out(cli, server):
    """Down for 18 s after the first answer (connection refused), then back on the same port: the run completes."""
    local_models("retry: {max_backoff_s: 4}\n")  # a try at least every 4 s: the restart is seen soon after it
    back = down_after_first_answer(server, 18.0)
    result, took = timed_run(cli, server)
    assert result.code == 0, result.err
    assert back.is_set() and 18.0 <= took < 60, took
    doc = result.json()
    assert doc["status"] == "completed" and [t["status"] for t in doc["tasks"]] == ["completed"] * 3
    assert [len(answered(server, task)) for task in TASKS] == [1, 1, 1]  # every task answered, by the restarted server
    outage = events(cli, doc["run_id"], "model_outage")
    assert len(outage) == 1, outage  # it began (an 18 s outage has no minute line)
    assert outage[0]["message"].startswith("the model server (openai/gpt-4.1 at ") and f" at {server.url}) is unreachable (" in outage[0]["message"]
    assert "retrying for up to 10m00s" in outage[0]["message"]
    (over,) = events(cli, doc["run_id"], "model_back")
    assert over["message"].startswith("model server back after ")


def test_outage_wait_0_fails_fast_and_resumably(cli, server):
    local_models("retry: {outage_wait: 0}\n")
    down_after_first_answer(server, None)
    result, took = timed_run(cli, server)
    assert result.code == 1, result.err
    assert took < 15, took  # the call's own three tries (1 s, then 2 s apart), then the stop
    doc = result.json()
    assert doc["status"] == "failed" and [t["status"] for t in doc["tasks"]] == ["completed", "failed", "pending"]
    assert doc["error"].startswith(f"task 2 fact_check failed: the model server (openai/gpt-4.1 at {server.url}) was unreachable for ")
    assert doc["error"].endswith("; the run stopped, to be resumed once it is back")
    assert "Traceback" not in result.err and f"mamabear resume {doc['run_id']}" in result.err
    assert events(cli, doc["run_id"], "model_outage") == []  # no waiting, so no line that says it waits

    server.up()  # the server is back: the run is resumed, and task 1 is not asked again
    resumed = cli("resume", doc["run_id"], "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["status"] == "completed"
    assert [len(answered(server, task)) for task in TASKS] == [1, 1, 1]


def test_a_server_that_never_answered_is_reported_within_seconds(cli, server):
    """Unreachable from the start: a wrong URL or a server not started, not an outage; exit 2, as before."""
    server.down()
    result, took = timed_run(cli, server)
    assert result.code == 2, result.err
    assert took < 30, took  # three tries, and CrewAI's one task retry of three more: about 6 s
    doc = result.json()
    assert doc["status"] == "failed" and doc["error"].startswith("task 1 research_topic failed: cannot reach the model provider")
    assert events(cli, doc["run_id"], "model_outage") == []


def test_an_outage_longer_than_outage_wait_stops_the_run_resumably_saying_so_as_it_waits(cli, server, monkeypatch):
    """outage_wait: 6 and a server down for good after its first answer: a progress line each interval (lowered here
    from a minute to 1 s), then the one-sentence stop, exit 1."""
    monkeypatch.setattr(resilience, "OUTAGE_NOTE_EVERY_S", 1.0)
    local_models("retry: {outage_wait: 6}\n")
    down_after_first_answer(server, None)
    result, took = timed_run(cli, server)
    assert result.code == 1, result.err
    assert 6.0 <= took < 25, took
    doc = result.json()
    assert doc["status"] == "failed" and [t["status"] for t in doc["tasks"]] == ["completed", "failed", "pending"]
    error = doc["error"].removeprefix("task 2 fact_check failed: ")
    assert re.match(rf"the model server \(openai/gpt-4\.1 at {re.escape(server.url)}\) was unreachable for 6\.\ds \(", error), error
    assert error.endswith("; the run stopped, to be resumed once it is back") and error.count(";") == 1
    assert result.err.count("mamabear resume") == 1  # the CLI's hint, once
    lines = events(cli, doc["run_id"], "model_outage")
    assert "is unreachable" in lines[0]["message"] and "retrying for up to 6.0s" in lines[0]["message"]
    every = lines[1:]
    assert 2 <= len(every) <= 6, [e["message"] for e in every]  # about one a second, from the first line (at 1.5-3 s) to 6 s
    assert all(e["message"].startswith("model server unreachable for ") and e["message"].endswith("s; retrying") for e in every)
    seconds = [e["data"]["seconds"] for e in every]
    assert all(b - a >= 0.9 for a, b in zip(seconds, seconds[1:], strict=False)), seconds  # never more often than the interval
    assert events(cli, doc["run_id"], "model_back") == []


def test_a_mission_rides_out_a_server_restart_between_its_plan_and_its_item(cli, server):
    """Unattended: the server goes away for 20 s once the plan is answered; the mission waits, then completes."""
    import json as json_

    from test_mission_run import HELLO_PLAN, PLANNER, writes_the_greeting

    local_models("retry: {max_backoff_s: 4}\n")
    back = threading.Event()

    def outage() -> None:
        server.down()
        time.sleep(20)
        server.up()
        back.set()

    server.add(contains=PLANNER, times=1, text=json_.dumps(HELLO_PLAN), then=outage)
    writes_the_greeting(server)
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", server.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert back.is_set() and doc["status"] == "completed"
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "confirm the goal"]  # no try lost to it
    totals = doc["totals"]  # the tries that met the outage are in the store as failed calls; 4 were answered
    assert len([r for r in server.chat_requests if r["status"] == 200]) == totals["llm_calls"] - totals["llm_errors"] == 4
    assert len(events(cli, doc["run_id"], "model_back")) == 1
