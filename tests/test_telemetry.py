"""Traces and metrics of real runs, sent by the real OTLP exporters to a receiver on 127.0.0.1 that decodes them."""

from __future__ import annotations

import base64
import json

import pytest

from otlpreceiver import OtlpReceiver
from test_sandbox_crew import QUESTION, script_file_work

RESEARCH = ["research", "-i", "topic=bees"]


@pytest.fixture(scope="module")
def receiver():
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(receiver):
    receiver.reset()


def by_start(spans: list[dict]) -> list[dict]:
    return sorted(spans, key=lambda s: s["start_ns"])


def named(spans: list[dict], prefix: str) -> list[dict]:
    return by_start([s for s in spans if s["name"].startswith(prefix)])


def assert_run_tree(spans: list[dict], doc: dict, fake) -> None:  # noqa: ANN001
    """run > task > agent step > LLM call, one trace, every parent present, GenAI attributes from what the server answered."""
    ids = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [r["name"] for r in roots] == [f"crew {doc['crew']}"]
    root = roots[0]
    assert {s["trace_id"] for s in spans} == {root["trace_id"]}
    assert all(s["parent_span_id"] in ids for s in spans if s is not root)
    assert root["attributes"]["mamabear.run_id"] == doc["run_id"] and root["attributes"]["mamabear.status"] == "completed"

    tasks = named(spans, "task ")
    assert [t["attributes"]["mamabear.task"] for t in tasks] == [t["task"] for t in doc["tasks"]]
    assert all(t["parent_span_id"] == root["span_id"] for t in tasks)
    agents = named(spans, "invoke_agent ")
    assert [ids[a["parent_span_id"]]["attributes"]["mamabear.task"] for a in agents] == [t["task"] for t in doc["tasks"]]
    assert [a["attributes"]["gen_ai.agent.name"] for a in agents] == [t["agent"] for t in doc["tasks"]]

    chats = named(spans, "chat ")
    served = [r for r in fake.chat_requests if r["status"] == 200]
    assert len(chats) == len(served) == doc["totals"]["llm_calls"]
    for chat in chats:
        attrs = chat["attributes"]
        agent_span = ids[chat["parent_span_id"]]
        assert agent_span["name"].startswith("invoke_agent ")
        task = doc["tasks"][ids[agent_span["parent_span_id"]]["attributes"]["mamabear.task.position"] - 1]
        assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.system"] == attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == task["model"]
        assert chat["name"] == f"chat {task['model']}"
        assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["mamabear.cost_usd"] > 0 and attrs["mamabear.agent"] == task["agent"] and attrs["mamabear.run_id"] == doc["run_id"]
        assert chat["kind"] == 3  # SPAN_KIND_CLIENT
    assert sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats) == sum(r["usage"]["prompt_tokens"] for r in served)
    assert sum(c["attributes"]["gen_ai.usage.output_tokens"] for c in chats) == sum(r["usage"]["completion_tokens"] for r in served)


def test_otlp_http_receives_the_span_tree_and_metrics(cli, fake, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url)
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert {r["path"] for r in receiver.requests} == {"/v1/traces", "/v1/metrics"}
    assert all(r["transport"] == "http" and r["status"] == 200 for r in receiver.requests)
    assert_run_tree(receiver.spans, doc, fake)

    points = receiver.metrics
    tokens = {
        p["attributes"]["gen_ai.token.type"]: p
        for p in points
        if p["name"] == "gen_ai.client.token.usage" and p["attributes"]["gen_ai.request.model"] == "openai/gpt-4.1"
    }
    assert tokens["input"]["sum"] == doc["totals"]["tokens_in"] and tokens["output"]["sum"] == doc["totals"]["tokens_out"]
    latency = [p for p in points if p["name"] == "gen_ai.client.operation.duration"]
    assert sum(p["count"] for p in latency) == doc["totals"]["llm_calls"] and latency[0]["attributes"]["mamabear.agent"] == "research_specialist"
    cost = sum(p["value"] for p in points if p["name"] == "mamabear.llm.pricing")
    assert cost == pytest.approx(doc["totals"]["cost_usd"], rel=1e-6)
    durations = [p for p in points if p["name"] == "mamabear.task.duration"]
    assert sum(p["count"] for p in durations) == len(doc["tasks"])


def test_otlp_grpc_carries_the_same_tree_and_the_configured_headers(cli, fake, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=bears,authorization=Bearer%20t0ken")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    traces = [r for r in receiver.requests if r["path"].endswith("TraceService/Export")]
    assert traces and all(r["transport"] == "grpc" for r in receiver.requests)
    assert traces[0]["headers"]["x-team"] == "bears" and traces[0]["headers"]["authorization"] == "Bearer t0ken"
    assert any(r["path"].endswith("MetricsService/Export") for r in receiver.requests)
    assert_run_tree(receiver.spans, result.json(), fake)


def test_langfuse_gets_its_otlp_path_basic_auth_and_generation_spans(cli, fake, receiver, monkeypatch):
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1234")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-5678")
    monkeypatch.setenv("LANGFUSE_HOST", receiver.http_url + "/")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert {r["path"] for r in receiver.requests} == {"/api/public/otel/v1/traces"}  # traces only: Langfuse takes no metrics
    expected = "Basic " + base64.b64encode(b"pk-lf-1234:sk-lf-5678").decode()
    assert all(r["headers"]["authorization"] == expected for r in receiver.requests)
    spans = receiver.spans
    assert_run_tree(spans, doc, fake)
    root = next(s for s in spans if s["parent_span_id"] is None)
    assert root["attributes"]["session.id"] == doc["run_id"] and root["attributes"]["langfuse.trace.name"] == "mamabear research"
    assert {c["attributes"]["langfuse.observation.type"] for c in named(spans, "chat ")} == {"generation"}
    assert root["resource"]["service.name"] == "mamabear"
    # The secret key reaches Langfuse only in the header: no span, log or stored event carries it.
    assert "sk-lf-5678" not in json.dumps(spans) and "sk-lf-5678" not in cli("runs", "logs", doc["run_id"]).out


def test_without_an_exporter_spans_go_to_jsonl_and_runs_trace_draws_them(cli, fake, receiver, isolated):
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert receiver.requests == []  # nothing leaves the machine
    path = isolated / "traces" / f"{doc['run_id']}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    spans = cli("runs", "trace", doc["run_id"][:13], "--json").json()
    assert spans == lines
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_id"] in ids for s in spans if s["parent_id"] is not None)
    assert [s["name"] for s in spans if s["parent_id"] is None] == ["crew research"]
    assert sum(1 for s in spans if s["name"] == "chat openai/gpt-4.1") == doc["totals"]["llm_calls"]

    drawn = cli("runs", "trace", doc["run_id"]).out
    assert "crew research" in drawn and "task research_topic" in drawn and "invoke_agent research_specialist" in drawn
    first = doc["tasks"][0]
    assert f"{first['tokens_in']:,}+{first['tokens_out']:,} tokens" in drawn
    assert cli("runs", "trace", "nope").code == 2


def test_a_resumed_run_is_one_trace_with_a_root_per_attempt(cli, fake, isolated):
    fake.add(task="Check every claim", status=400, text="the request is malformed", times=2)  # the task and its one retry
    failed = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert failed.code == 1
    run_id = failed.json()["run_id"]
    assert cli("resume", run_id, "--quiet").code == 0
    spans = cli("runs", "trace", run_id, "--json").json()
    roots = sorted((s for s in spans if s["parent_id"] is None), key=lambda s: s["start"])
    assert [r["attributes"]["mamabear.attempt"] for r in roots] == [1, 2]
    assert [r["status"] for r in roots] == ["error", "ok"] and len({s["trace_id"] for s in spans}) == 1
    failed_task = next(s for s in spans if s["name"] == "task fact_check" and s["status"] == "error")
    assert "malformed" in failed_task["status_message"]
    failed_spans = [s for s in spans if s["name"] == "task fact_check" and s["attributes"]["mamabear.attempt"] == 1]
    assert len(failed_spans) == 1, failed_spans  # a task failed by its own event is not ended again when the run settles
    assert next(s for s in spans if s["parent_id"] is None and s["status"] == "error")["status_message"].startswith("task 2 fact_check failed")
    # The first attempt's completed task is not run again: one span for it, in attempt 1.
    assert [s["attributes"]["mamabear.attempt"] for s in spans if s["name"] == "task research_topic"] == [1]


def test_tool_calls_hang_under_the_agent_step_that_made_them(cli, fake, isolated):
    script_file_work(fake)
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    spans = cli("runs", "trace", result.json()["run_id"], "--json").json()
    ids = {s["span_id"]: s for s in spans}
    tools = sorted((s for s in spans if s["name"].startswith("execute_tool ")), key=lambda s: s["start"])
    assert [t["attributes"]["gen_ai.tool.name"] for t in tools] == ["file_create", "file_str_replace", "bash", "bash"]
    for tool in tools:
        parent = ids[tool["parent_id"]]
        assert parent["name"] == "invoke_agent model_coordinator" and ids[parent["parent_id"]]["name"] == "task frame_question"
    assert all(t["attributes"]["mamabear.tool.ok"] for t in tools)


def test_sensitive_values_never_reach_spans_or_logs(cli, fake, receiver, monkeypatch, isolated):
    (isolated.parent / "work" / "config").mkdir()
    (isolated.parent / "work" / "config" / "privacy.yaml").write_text("sensitive:\n  env: [BILLING_DSN]\n  patterns: ['[\\w.+-]+@[\\w-]+\\.[\\w.-]+']\n")
    monkeypatch.setenv("BILLING_DSN", "postgres://billing:hunter22@db")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url)
    fake.add(task="Research", status=400, text="cannot bill alice@example.com at postgres://billing:hunter22@db", times=2)
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 1
    run_id = result.json()["run_id"]
    exported = json.dumps(receiver.spans)
    local = (isolated / "traces" / f"{run_id}.jsonl").read_text()
    logs = cli("runs", "logs", run_id).out + cli("runs", "show", run_id, "--json").out
    for text in (exported, local, logs, result.err, result.out):
        assert "alice@example.com" not in text and "hunter22" not in text
    assert "cannot bill [REDACTED] at [REDACTED]" in exported and "cannot bill [REDACTED]" in local


def test_an_unreachable_collector_never_fails_the_run(cli, fake, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    logs = cli("runs", "logs", result.json()["run_id"]).out
    assert "spans could not be sent to http://127.0.0.1:9/v1/traces" in logs


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported; use http/protobuf or grpc.",
        ),
        ({"LANGFUSE_PUBLIC_KEY": "pk-lf-1"}, "Langfuse tracing needs LANGFUSE_SECRET_KEY as well"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "must start with http:// or https://"),
    ],
)
def test_bad_exporter_settings_are_exit_2_before_any_run_exists(cli, fake, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--quiet")
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert fake.chat_requests == [] and cli("runs", "list", "--json").json() == []


def test_otel_sdk_disabled_writes_no_trace(cli, fake, monkeypatch, isolated):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    result = cli("run", *RESEARCH, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0
    assert not (isolated / "traces").exists()
    assert cli("runs", "trace", result.json()["run_id"]).code == 2
