"""The local trace file: one JSON object per span in ``$MAMABEAR_HOME/traces/RUN_ID.jsonl``.

Every attempt of a run appends to the same file (one trace per run). Spans are written
as they end, flushed line by line, so a crashed run keeps every span it finished.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mamabear.errors import NotFound


def trace_path(home: Path, run_id: str) -> Path:
    return home / "traces" / f"{run_id}.jsonl"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    parent = span.parent
    return {
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "name": span.name,
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or 0) / 1e9,
        "status": span.status.status_code.name.lower(),
        "status_message": span.status.description,
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
    }


class JsonlSpanExporter(SpanExporter):
    """Appends spans to one run's trace file; used through a SimpleSpanProcessor-like direct call."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.lost = 0  # spans that could not be written (a full disk): the run goes on, and says so at its end
        self.error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), ensure_ascii=False, default=str) + "\n" for s in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            try:
                self._file.write(lines)
                self._file.flush()
            except OSError as exc:
                self.lost += len(spans)
                self.error = exc.strerror or str(exc)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            try:
                self._file.close()
            except OSError:  # what could not be flushed is counted already
                pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@dataclass
class SpanNode:
    record: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(0.0, self.record["end"] - self.record["start"])


def read_trace(home: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's spans in the order they were written; a torn last line (a killed process) is skipped."""
    path = trace_path(home, run_id)
    if not path.is_file():
        raise NotFound(f"run {run_id} has no trace at {path}; runs record one since tracing was added, unless OTEL_SDK_DISABLED=true.")
    spans = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            spans.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return spans


def span_tree(spans: list[dict[str, Any]]) -> list[SpanNode]:
    """Roots (one per attempt) with their children, each level in start order; orphans become roots."""
    nodes = {s["span_id"]: SpanNode(s) for s in spans}
    roots: list[SpanNode] = []
    for node in nodes.values():
        parent = nodes.get(node.record["parent_id"] or "")
        (parent.children if parent is not None else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.record["start"])
    return sorted(roots, key=lambda n: n.record["start"])
