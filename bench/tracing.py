"""Tracing overhead per LLM call, with tracing off and on (goal: under 1 ms).

Two measures:
1. The span work itself: RunTrace's start and end of one LLM call span (attributes, the
   JSONL line, the hand-off to the OTLP batch processor, metrics), timed per call.
2. A whole crew run through the run engine (7 tasks, scripted model server) with tracing
   off, to the local JSONL, and to OTLP http (with and without metrics) on a local
   receiver: the difference in wall time, per run and per LLM call. Differences of a few
   ms are noise on a 2-core machine; (1) is the precise per-call figure.
Note that CrewAI delivers events on its handler thread pool: span work is not on the
agent's thread, so it delays no model call unless the machine is saturated.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import offline  # noqa: F401  (sets up MAMABEAR_HOME and the privacy defaults first)
from offline import CREW, INPUTS, FakeLLM

from otlpreceiver import OtlpReceiver

logging.disable(logging.WARNING)  # CrewAI's warnings about approximate token counts
CALLS = 3000
RUNS = 12


def span_work(receiver: OtlpReceiver | None, metrics: bool) -> list[float]:
    from pathlib import Path

    from mamabear.config.redact import Redactor
    from mamabear.observe import Call, RunState, Step, TaskState
    from mamabear.status import Status
    from mamabear.telemetry.sinks import Sinks
    from mamabear.telemetry.spans import RunTrace
    from mamabear.telemetry.targets import targets

    env = {}
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.http_url
        if not metrics:
            env["OTEL_METRICS_EXPORTER"] = "none"
    sinks = Sinks.open(Path(os.environ["MAMABEAR_HOME"]), f"bench-{time.time_ns()}", targets(env))
    trace = RunTrace(sinks, "bench-run", CREW, 1, Redactor({}))
    task = TaskState(1, "plan_build", "scout_commander", "openai/gpt-4.1", Status.RUNNING, started_at=time.time())
    state = RunState("bench-run", CREW, [task])
    trace.task_started(state, task, None)
    step = Step(1, "scout_commander", "a1")
    trace.agent_started(step, time.time())
    samples = []
    for i in range(CALLS):
        begin = time.perf_counter()
        now = time.time()
        call = Call(f"call-{i}", Step(1, "scout_commander", "a1", f"event-{i}"), "openai/gpt-4.1", "openai/gpt-4.1", now)
        trace.call_started(call)
        call.finished_at, call.outcome, call.tokens_in, call.tokens_out, call.cost_usd = now + 0.001, "ok", 812, 95, 0.00238
        call.finish_reason, call.response_id = "stop", f"chatcmpl-{i}"
        trace.call_ended(call)
        samples.append(time.perf_counter() - begin)
    trace.finish("completed", None, {})
    return samples


def open_and_close(receiver: OtlpReceiver, rounds: int = 20) -> list[float]:
    """A run's fixed cost: opening the exporters and draining them when it ends (one HTTP export per signal)."""
    from pathlib import Path

    from mamabear.config.redact import Redactor
    from mamabear.telemetry.sinks import Sinks
    from mamabear.telemetry.spans import RunTrace
    from mamabear.telemetry.targets import targets

    samples = []
    for i in range(rounds):
        begin = time.perf_counter()
        sinks = Sinks.open(Path(os.environ["MAMABEAR_HOME"]), f"fixed-{i}", targets({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_url}))
        RunTrace(sinks, "bench-run", CREW, 1, Redactor({})).finish("completed", None, {})
        samples.append(time.perf_counter() - begin)
    return samples


def crew_run(env: dict[str, str]) -> tuple[float, int]:
    from mamabear.config.limits import Limits
    from mamabear.engine.attempt import Attempt
    from mamabear.engine.plan import make_plan
    from mamabear.engine.services import Services

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        ws = Services(base_url=FAKE.url, no_cache=True)
        plan = make_plan(ws.catalog, ws.models, CREW, INPUTS, ws.settings)
        begin = time.perf_counter()
        result = Attempt(ws, plan, [], Limits()).run()
        return time.perf_counter() - begin, result.state.llm_calls
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def show(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95)]
    print(f"  {label:<44} mean {statistics.mean(samples) * 1e6:7.1f} µs   p95 {p95 * 1e6:7.1f} µs")


if __name__ == "__main__":
    receiver = OtlpReceiver().start()
    print(f"span work per LLM call ({CALLS} calls):")
    show("local JSONL only (the default)", span_work(None, metrics=False))
    show("JSONL + OTLP http traces", span_work(receiver, metrics=False))
    show("JSONL + OTLP http traces and metrics", span_work(receiver, metrics=True))

    fixed = open_and_close(receiver)
    print(f"per run, fixed: open the OTLP exporters and drain them at the end: median {statistics.median(fixed) * 1000:.1f} ms")

    FAKE = FakeLLM().start()
    configs = {
        "off (OTEL_SDK_DISABLED=true)": {"OTEL_SDK_DISABLED": "true"},
        "local JSONL (the default)": {},
        "JSONL + OTLP http traces": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_url, "OTEL_METRICS_EXPORTER": "none"},
        "JSONL + OTLP http traces and metrics": {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http_url},
    }
    for env in configs.values():
        crew_run(env)  # warm up: imports, first connections
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    calls = 0
    for _ in range(RUNS):  # interleaved, so drift in the machine's load hits every configuration alike
        for name, env in configs.items():
            took, calls = crew_run(env)
            seconds[name].append(took)
    base = statistics.median(seconds["off (OTEL_SDK_DISABLED=true)"])
    print(f"crew run ({CREW}, {calls} LLM calls, median of {RUNS} interleaved runs):")
    for name, values in seconds.items():
        diff = (statistics.median(values) - base) * 1000
        print(f"  {name:<44} {statistics.median(values):.3f} s   {diff:+6.1f} ms a run   {diff / calls:+.2f} ms a call")
    FAKE.stop()
    receiver.stop()
