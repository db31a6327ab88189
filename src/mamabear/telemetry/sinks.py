"""The exporters one run attempt sends to: the local JSONL file always, OTLP and Langfuse when configured.

Remote exporters sit behind a BatchSpanProcessor (a background thread sends them), so a slow
or unreachable collector never holds up an agent; ``close`` gives them a bounded time to
drain and reports what could not be sent.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from mamabear import __version__
from mamabear.telemetry.jsonl import JsonlSpanExporter, trace_path
from mamabear.telemetry.targets import Target

CLOSE_TIMEOUT_MS = 5000


class _Counted(SpanExporter):
    """Counts what a remote exporter failed to send, so the run can say so once."""

    def __init__(self, inner: SpanExporter, target: Target) -> None:
        self.inner, self.target = inner, target
        self.failed = 0
        self.error: str | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - a broken collector must never break a run
            result, self.error = SpanExportResult.FAILURE, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if result is not SpanExportResult.SUCCESS:
            with self._lock:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _span_exporter(target: Target) -> SpanExporter:
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=target.endpoint, headers=target.headers or None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=target.endpoint, headers=target.headers or None)


def metric_exporter(target: Target) -> Any:
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter(endpoint=target.endpoint, headers=target.headers or None)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter(endpoint=target.endpoint, headers=target.headers or None)


@dataclass
class Sinks:
    resource: Resource
    local: JsonlSpanExporter
    remote: list[tuple[BatchSpanProcessor, _Counted]] = field(default_factory=list)
    meter_provider: Any = None  # opentelemetry.sdk.metrics.MeterProvider when metrics go somewhere

    @classmethod
    def open(cls, home: Path, run_id: str, targets: list[Target]) -> Sinks:
        resource = Resource.create({"service.name": "mamabear", "service.version": __version__})
        sinks = cls(resource, JsonlSpanExporter(trace_path(home, run_id)))
        for target in targets:
            if target.signal == "traces":
                counted = _Counted(_span_exporter(target), target)
                sinks.remote.append((BatchSpanProcessor(counted), counted))
        metric_targets = [t for t in targets if t.signal == "metrics"]
        if metric_targets:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers = [PeriodicExportingMetricReader(metric_exporter(t)) for t in metric_targets]
            sinks.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        return sinks

    def emit(self, span: ReadableSpan) -> None:
        self.local.export((span,))
        for processor, _ in self.remote:
            processor.on_end(span)

    def close(self) -> list[str]:
        """Drain every exporter (bounded); one line per target that lost spans."""
        for processor, _ in self.remote:
            processor.force_flush(CLOSE_TIMEOUT_MS)
            processor.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown(timeout_millis=CLOSE_TIMEOUT_MS)
        self.local.shutdown()
        lost = [f"{self.local.lost} spans could not be written to {self.local.path} ({self.local.error})"] if self.local.lost else []
        return lost + [f"{c.failed} spans could not be sent to {c.target.endpoint}" + (f" ({c.error})" if c.error else "") for _, c in self.remote if c.failed]
