"""The scripted OTLP receiver against the real OpenTelemetry exporters, over OTLP/HTTP and OTLP/gRPC.

No global provider is installed: every test builds its own TracerProvider / MeterProvider.
"""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from otlpreceiver import OtlpReceiver

TRACE_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RESOURCE = Resource.create({"service.name": "mamabear-test"})


@pytest.fixture(scope="module")
def module_receiver() -> OtlpReceiver:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(module_receiver: OtlpReceiver) -> OtlpReceiver:
    module_receiver.reset()
    return module_receiver


def export_tree(exporter: SpanExporter) -> None:
    """parent -> child, each exported as it ends (child first)."""
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("mamabear.test")
    with tracer.start_as_current_span("crew", kind=SpanKind.SERVER, attributes={"crew.name": "research"}):
        with tracer.start_as_current_span("task") as child:
            child.set_attribute("task.index", 2)
            child.set_attribute("llm.temperature", 0.25)
            child.set_attribute("tools", ["search", "fetch"])
            child.set_attribute("cached", False)
            child.add_event("tool.call", {"tool": "search", "attempt": 1})
            child.set_status(StatusCode.ERROR, "boom")
    provider.shutdown()


def assert_tree(receiver: OtlpReceiver, transport: str) -> None:
    assert [s["name"] for s in receiver.spans] == ["task", "crew"]
    parent, child = receiver.span("crew"), receiver.span("task")
    assert len(parent["trace_id"]) == 32 and len(parent["span_id"]) == 16
    assert parent["parent_span_id"] is None
    assert child["parent_span_id"] == parent["span_id"]
    assert child["trace_id"] == parent["trace_id"]
    assert parent["kind"] == 2 and child["kind"] == 1  # SPAN_KIND_SERVER, SPAN_KIND_INTERNAL
    assert parent["attributes"] == {"crew.name": "research"}
    assert child["attributes"] == {"task.index": 2, "llm.temperature": 0.25, "tools": ["search", "fetch"], "cached": False}
    assert child["events"] == [{"name": "tool.call", "attributes": {"tool": "search", "attempt": 1}}]
    assert (child["status_code"], child["status_message"]) == (2, "boom")
    assert parent["status_code"] == 0
    assert parent["start_ns"] <= child["start_ns"] <= child["end_ns"] <= parent["end_ns"]
    assert child["resource"]["service.name"] == "mamabear-test"
    assert child["scope"] == "mamabear.test"
    assert {s["transport"] for s in receiver.spans} == {transport}


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_http_traces(receiver: OtlpReceiver, compression: Compression) -> None:
    exporter = HttpSpanExporter(endpoint=f"{receiver.http_url}/v1/traces", headers={"authorization": "Basic abc"}, compression=compression)
    export_tree(exporter)
    assert_tree(receiver, "http")
    requests = receiver.requests
    assert len(requests) == 2
    for request in requests:
        assert (request["transport"], request["path"], request["signal"], request["status"]) == ("http", "/v1/traces", "traces", 200)
        assert request["headers"]["authorization"] == "Basic abc"
        assert request["headers"]["content-type"] == "application/x-protobuf"
        assert request["headers"]["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
        assert request["headers"].get("content-encoding") == ("gzip" if compression is Compression.Gzip else None)


def test_grpc_traces(receiver: OtlpReceiver) -> None:
    exporter = GrpcSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True, headers={"authorization": "Bearer xyz", "x-tenant": "t1"})
    export_tree(exporter)
    assert_tree(receiver, "grpc")
    request = receiver.requests[0]
    assert (request["transport"], request["path"], request["signal"]) == ("grpc", TRACE_PATH, "traces")
    assert request["headers"]["authorization"] == "Bearer xyz"
    assert request["headers"]["x-tenant"] == "t1"
    assert "OTel-OTLP-Exporter-Python/" in request["headers"]["user-agent"]


def test_http_base_endpoint_from_environment(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the environment's base endpoint gets ``/v1/traces`` appended; ``endpoint=`` is used verbatim."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Basic%20env")
    export_tree(HttpSpanExporter())
    assert {r["path"] for r in receiver.requests} == {"/v1/traces"}
    assert receiver.requests[0]["headers"]["authorization"] == "Basic env"
    export_tree(HttpSpanExporter(endpoint=receiver.http_url))
    assert receiver.requests[-1]["path"] == "/" and receiver.requests[-1]["signal"] is None
    assert len(receiver.spans) == 2  # the request to "/" is recorded, not decoded


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_metrics(receiver: OtlpReceiver, transport: str) -> None:
    if transport == "http":
        exporter = HttpMetricExporter(endpoint=f"{receiver.http_url}/v1/metrics", headers={"authorization": "Basic abc"})
    else:
        exporter = GrpcMetricExporter(endpoint=receiver.grpc_endpoint, insecure=True, headers={"authorization": "Basic abc"})
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("mamabear.test")
    counter = meter.create_counter("mamabear.tasks", unit="1")
    histogram = meter.create_histogram("mamabear.task.duration", unit="s")
    counter.add(2, {"crew": "research"})
    counter.add(3, {"crew": "research"})
    histogram.record(0.5, {"crew": "research"})
    histogram.record(1.5, {"crew": "research"})
    assert provider.force_flush()
    provider.shutdown()

    tasks = [m for m in receiver.metrics if m["name"] == "mamabear.tasks"]
    durations = [m for m in receiver.metrics if m["name"] == "mamabear.task.duration"]
    assert tasks and durations
    assert tasks[0]["kind"] == "sum" and tasks[0]["value"] == 5 and tasks[0]["attributes"] == {"crew": "research"}
    assert durations[0]["kind"] == "histogram" and durations[0]["unit"] == "s"
    assert (durations[0]["count"], durations[0]["sum"], durations[0]["min"], durations[0]["max"]) == (2, 2.0, 0.5, 1.5)
    assert sum(durations[0]["bucket_counts"]) == 2
    assert len(durations[0]["bucket_counts"]) == len(durations[0]["explicit_bounds"]) + 1
    assert tasks[0]["resource"]["service.name"] == "mamabear-test" and tasks[0]["scope"] == "mamabear.test"
    assert {m["transport"] for m in receiver.metrics} == {transport}
    assert {r["signal"] for r in receiver.requests} == {"metrics"}
    assert receiver.requests[0]["headers"]["authorization"] == "Basic abc"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_scripted_failure(receiver: OtlpReceiver, transport: str) -> None:
    """A non-retryable rejection fails the export at once; it is recorded but its spans are not."""
    receiver.fail(400, transport=transport)
    if transport == "http":
        exporter = HttpSpanExporter(endpoint=f"{receiver.http_url}/v1/traces", timeout=2)
    else:
        exporter = GrpcSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=2)
    spans = []
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(_Collect(spans)))
    tracer = provider.get_tracer("mamabear.test")
    tracer.start_span("rejected").end()
    tracer.start_span("accepted").end()
    assert [exporter.export([s]) for s in spans] == [SpanExportResult.FAILURE, SpanExportResult.SUCCESS]
    exporter.shutdown()
    assert [r["status"] for r in receiver.requests] == [400, 200]
    assert [s["name"] for s in receiver.spans] == ["accepted"]


def test_wait_for_and_reset(receiver: OtlpReceiver) -> None:
    assert not receiver.wait_for(lambda: receiver.spans, timeout=0.05)
    export_tree(HttpSpanExporter(endpoint=f"{receiver.http_url}/v1/traces"))
    assert receiver.wait_for(lambda: len(receiver.spans) == 2, timeout=1)
    receiver.reset()
    assert receiver.spans == [] and receiver.requests == [] and receiver.metrics == []


class _Collect(SpanExporter):
    def __init__(self, into: list) -> None:
        self.into = into

    def export(self, spans):  # noqa: ANN001, ANN201
        self.into.extend(spans)
        return SpanExportResult.SUCCESS
