"""A scripted OTLP collector on 127.0.0.1 for offline tests: OTLP/HTTP (protobuf) and OTLP/gRPC side by side.

The real OpenTelemetry exporters work against it unchanged::

    with OtlpReceiver() as otlp:
        exporter = OTLPSpanExporter(endpoint=f"{otlp.http_url}/v1/traces")       # http/protobuf
        exporter = OTLPSpanExporter(endpoint=otlp.grpc_endpoint, insecure=True)  # grpc
        ...
        otlp.wait_for(lambda: any(s["name"] == "crew" for s in otlp.spans))

HTTP accepts a POST on any path: a path ending in ``/v1/traces`` or ``/v1/metrics`` is
decoded as the matching ``Export*ServiceRequest`` (``Content-Encoding: gzip`` or
``deflate`` is undone first); ``/v1/logs`` and anything else is only recorded. The
reply is 200 with the serialized, empty ``Export*ServiceResponse``. gRPC serves the
trace, metrics and logs ``Export`` methods the same way.

Every request lands in ``requests`` (``transport``, ``path``, lower-cased ``headers``
or gRPC metadata, ``signal``, the uncompressed ``body``, ``status``); decoded spans
land in ``spans`` and metric data points in ``metrics``, as plain dicts. ``fail(...)``
rejects the next requests (an HTTP status with headers such as ``Retry-After``, or
the matching gRPC status code); rejected requests are recorded but not decoded.
"""

from __future__ import annotations

import gzip
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from loopback import JsonHandler, LoopbackServer

# signal -> (URL path suffix, request type, empty response, gRPC method path)
SIGNALS: dict[str, tuple[str, type[Message], Message, str]] = {
    "traces": (
        "/v1/traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse(),
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    ),
    "metrics": (
        "/v1/metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse(),
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    ),
    "logs": (
        "/v1/logs",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse(),
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ),
}

GRPC_CODE_FOR_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value: arrays become lists, kvlists dicts, an empty value None."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def decode_spans(request: trace_service_pb2.ExportTraceServiceRequest, transport: str) -> list[dict[str, Any]]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "kind": int(span.kind),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "attributes": attributes(span.attributes),
                        "status_code": int(span.status.code),
                        "status_message": span.status.message,
                        "events": [{"name": e.name, "attributes": attributes(e.attributes)} for e in span.events],
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "transport": transport,
                    }
                )
    return spans


def _optional(point: Message, name: str) -> float | None:
    return getattr(point, name) if point.HasField(name) else None


def _point_values(kind: str, point: Any) -> dict[str, Any]:
    if kind in ("sum", "gauge"):
        number = point.WhichOneof("value")
        return {"value": getattr(point, number) if number else None}
    if kind == "histogram":
        return {
            "count": point.count,
            "sum": _optional(point, "sum"),
            "bucket_counts": list(point.bucket_counts),
            "explicit_bounds": list(point.explicit_bounds),
            "min": _optional(point, "min"),
            "max": _optional(point, "max"),
        }
    if kind == "exponential_histogram":
        return {
            "count": point.count,
            "sum": _optional(point, "sum"),
            "scale": point.scale,
            "zero_count": point.zero_count,
            "positive": {"offset": point.positive.offset, "bucket_counts": list(point.positive.bucket_counts)},
            "negative": {"offset": point.negative.offset, "bucket_counts": list(point.negative.bucket_counts)},
            "min": _optional(point, "min"),
            "max": _optional(point, "max"),
        }
    # summary
    return {"count": point.count, "sum": point.sum, "quantiles": {q.quantile: q.value for q in point.quantile_values}}


def decode_metrics(request: metrics_service_pb2.ExportMetricsServiceRequest, transport: str) -> list[dict[str, Any]]:
    """One dict per data point."""
    points = []
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for point in getattr(metric, kind).data_points:
                    points.append(
                        {
                            "name": metric.name,
                            "kind": kind,
                            "unit": metric.unit,
                            "attributes": attributes(point.attributes),
                            "time_ns": point.time_unix_nano,
                            **_point_values(kind, point),
                            "resource": resource,
                            "scope": scope_metrics.scope.name,
                            "transport": transport,
                        }
                    )
    return points


@dataclass
class Failure:
    status: int
    times: int | None = 1  # None: until reset()
    transport: str | None = None  # "http", "grpc"; None: both
    signal: str | None = None  # "traces", "metrics", "logs"; None: all
    headers: dict[str, str] = field(default_factory=dict)  # HTTP reply headers, e.g. {"Retry-After": "0"}
    message: str = "injected failure"
    used: int = 0


class OtlpReceiver:
    """Both OTLP transports on 127.0.0.1 random ports; ``start()`` returns self, ``stop()`` ends both."""

    def __init__(self, grpc_workers: int = 4) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._spans: list[dict[str, Any]] = []
        self._metrics: list[dict[str, Any]] = []
        self._failures: list[Failure] = []
        self._http = LoopbackServer(_handler_for(self))
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=grpc_workers, thread_name_prefix="otlp-grpc"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), self._grpc)
        self._grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT``, no path: append ``/v1/traces`` for an exporter's ``endpoint=``."""
        return self._http.origin

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT``; the gRPC exporters need ``insecure=True`` (or the http scheme) against it."""
        return f"http://127.0.0.1:{self._grpc_port}"

    def start(self) -> OtlpReceiver:
        self._http.start()
        self._grpc.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=0.5).wait(5)
        self._http.stop()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def spans(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._spans)

    @property
    def metrics(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._metrics)

    def span(self, name: str) -> dict[str, Any]:
        """The first span received with this name; KeyError if there is none."""
        for span in self.spans:
            if span["name"] == name:
                return span
        raise KeyError(name)

    def fail(self, status: int = 503, **kwargs: Any) -> Failure:
        """Reject the next matching requests (see ``Failure``); over gRPC as ``GRPC_CODE_FOR_STATUS[status]`` (else INTERNAL)."""
        failure = Failure(status, **kwargs)
        with self._lock:
            self._failures.append(failure)
        return failure

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._spans.clear()
            self._metrics.clear()
            self._failures.clear()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01) -> bool:
        """Poll ``predicate()`` until it is truthy (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def _receive(self, transport: str, path: str, headers: dict[str, Any], signal: str | None, body: bytes, message: Any, status: int = 200) -> Failure | None:
        """Record one request (``status`` is 400 when it could not be decoded) and, unless it was rejected,
        the spans or metric points it carries; returns the scripted failure that took it, if any."""
        record = {"transport": transport, "path": path, "headers": headers, "signal": signal, "body": body, "status": status, "time": time.time()}
        with self._lock:
            failure = None
            if status == 200:
                failure = next(
                    (f for f in self._failures if (f.times is None or f.used < f.times) and f.transport in (None, transport) and f.signal in (None, signal)),
                    None,
                )
            if failure is not None:
                failure.used += 1
                record["status"] = failure.status
            self._requests.append(record)
            if failure is None and status == 200 and signal == "traces":
                self._spans.extend(decode_spans(message, transport))
            elif failure is None and status == 200 and signal == "metrics":
                self._metrics.extend(decode_metrics(message, transport))
        return failure


class _Service:
    signal = ""

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(self, request: Message, context: grpc.ServicerContext) -> Message:  # noqa: N802 (the gRPC method name)
        _, _, response, method = SIGNALS[self.signal]
        metadata = {m.key.lower(): m.value for m in context.invocation_metadata()}
        failure = self.receiver._receive("grpc", method, metadata, self.signal, request.SerializeToString(), request)
        if failure is not None:
            context.abort(GRPC_CODE_FOR_STATUS.get(failure.status, grpc.StatusCode.INTERNAL), failure.message)
        return response


class _TraceService(_Service, trace_service_pb2_grpc.TraceServiceServicer):
    signal = "traces"


class _MetricsService(_Service, metrics_service_pb2_grpc.MetricsServiceServicer):
    signal = "metrics"


class _LogsService(_Service, logs_service_pb2_grpc.LogsServiceServicer):
    signal = "logs"


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        try:
            return zlib.decompress(data)
        except zlib.error:  # raw deflate, no zlib header
            return zlib.decompress(data, -zlib.MAX_WBITS)
    if encoding in ("", "identity"):
        return data
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:
            route = urllib.parse.urlsplit(self.path).path.rstrip("/")
            signal = next((name for name, (suffix, *_rest) in SIGNALS.items() if route.endswith(suffix)), None)
            headers = {k.lower(): v for k, v in self.headers.items()}
            raw = _read_body(self)
            try:
                body = _decompress(raw, headers.get("content-encoding", ""))
                message = SIGNALS[signal][1].FromString(body) if signal else None
            except (OSError, EOFError, ValueError, zlib.error, DecodeError) as exc:
                receiver._receive("http", self.path, headers, signal, raw, None, status=400)
                self._reply(400, f"undecodable OTLP request: {exc}".encode(), "text/plain")
                return
            failure = receiver._receive("http", self.path, headers, signal, body, message)
            if failure is not None:
                self._reply(failure.status, failure.message.encode(), "text/plain", failure.headers)
            else:
                self._reply(200, SIGNALS[signal][2].SerializeToString() if signal else b"", "application/x-protobuf")

        def _reply(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler
