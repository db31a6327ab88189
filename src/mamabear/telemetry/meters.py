"""Run metrics: tokens, cost, LLM latency, task duration and errors, by agent and model.

Names follow the OpenTelemetry GenAI semantic conventions where one exists
(``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``); the rest are ``mamabear.*``.
"""

from __future__ import annotations

from typing import Any

from mamabear import __version__

# The GenAI conventions' advised bucket boundaries.
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


class RunMeters:
    def __init__(self, meter_provider: Any) -> None:
        meter = meter_provider.get_meter("mamabear", __version__)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per model call", explicit_bucket_boundaries_advisory=TOKEN_BUCKETS
        )
        self.latency = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Model call duration", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
        self.cost = meter.create_counter("mamabear.llm.pricing", unit="USD", description="Model spend")
        self.saved = meter.create_counter("mamabear.cache.saved", unit="USD", description="Spend avoided by the response cache")
        self.task_duration = meter.create_histogram(
            "mamabear.task.duration", unit="s", description="Task duration", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
        )
        self.errors = meter.create_counter("mamabear.errors", unit="{error}", description="Failed model calls, tool calls and tasks")
        self.runs = meter.create_counter("mamabear.runs", unit="{run}", description="Run attempts ended, by crew and status")

    def llm_call(self, attrs: dict[str, Any], tokens_in: int, tokens_out: int, cost: float, seconds: float | None, error: str | None, saved: float) -> None:
        if error is not None:
            self.errors.add(1, {**attrs, "error.type": "llm"})
            return
        self.tokens.record(tokens_in, {**attrs, "gen_ai.token.type": "input"})
        self.tokens.record(tokens_out, {**attrs, "gen_ai.token.type": "output"})
        self.cost.add(cost, attrs)
        if saved:
            self.saved.add(saved, attrs)
        if seconds is not None:
            self.latency.record(seconds, attrs)

    def task(self, attrs: dict[str, Any], seconds: float, failed: bool) -> None:
        self.task_duration.record(seconds, attrs)
        if failed:
            self.errors.add(1, {**attrs, "error.type": "task"})

    def run_ended(self, attrs: dict[str, Any]) -> None:
        self.runs.add(1, attrs)

    def tool_error(self, attrs: dict[str, Any]) -> None:
        self.errors.add(1, {**attrs, "error.type": "tool"})


def pool_meters(env: Any, queue_depth: Any, busy: Any, worker: str, interval_s: float = 15.0) -> Any:
    """A worker's gauges, sent where the environment sends metrics (none: None): ``mamabear.queue.depth`` per queue
    (``queue_depth()`` -> {queue: runs waiting}) and ``mamabear.worker.busy`` (``busy()`` -> runs it works on)."""
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    from mamabear import __version__
    from mamabear.telemetry.sinks import metric_exporter
    from mamabear.telemetry.targets import targets

    found = [t for t in targets(env) if t.signal == "metrics"]
    if not found:
        return None
    readers = [PeriodicExportingMetricReader(metric_exporter(t), export_interval_millis=int(interval_s * 1000)) for t in found]
    provider = MeterProvider(resource=Resource.create({"service.name": "mamabear", "service.version": __version__}), metric_readers=readers)
    meter = provider.get_meter("mamabear")

    def depth(_: CallbackOptions) -> list[Observation]:
        return [Observation(n, {"mamabear.queue": q}) for q, n in queue_depth().items()]

    def working(_: CallbackOptions) -> list[Observation]:
        return [Observation(busy(), {"mamabear.worker": worker})]

    meter.create_observable_gauge("mamabear.queue.depth", [depth], unit="{run}", description="Runs waiting in each queue")
    meter.create_observable_gauge("mamabear.worker.busy", [working], unit="{run}", description="Runs a worker works on now")
    return provider
