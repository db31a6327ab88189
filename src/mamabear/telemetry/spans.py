"""One run attempt as an OpenTelemetry span tree: run > task > agent step > LLM call / tool call / memory query.

CrewAI delivers events on a thread pool, so a child's event may be handled before its
parent's. Span ids are therefore allocated per logical key (a task's position, an
agent's step on a task, a call id) the first time anything refers to it, and each span
is built whole when it ends, with the times the events carry. The trace id is derived
from the run id, so every attempt of a run (the first and each resume) is one trace.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace import Status as SpanStatus

from mamabear import __version__
from mamabear.config.models import provider_of
from mamabear.config.redact import Redactor
from mamabear.observe import Call, MemoryQuery, RunObserver, RunState, Step, TaskState, ToolUse
from mamabear.status import STOPPED, Status
from mamabear.telemetry.meters import RunMeters
from mamabear.telemetry.sinks import Sinks

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
SCOPE = InstrumentationScope("mamabear", __version__)
# gen_ai.provider.name values of the GenAI semantic conventions.
PROVIDER_NAMES = {"gemini": "gcp.gemini", "openai": "openai", "anthropic": "anthropic"}

Key = tuple


def trace_id_for(run_id: str) -> int:
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


@dataclass
class _Open:
    name: str
    start: float
    parents: tuple[Key, ...]  # candidate parents, nearest first; the first that exists is used
    attrs: dict[str, Any] = field(default_factory=dict)
    kind: SpanKind = SpanKind.INTERNAL


class RunTrace(RunObserver):
    """The span tree of one attempt, built as the run's observer; ``finish`` ends it and drains the exporters."""

    def __init__(self, sinks: Sinks, run_id: str, crew: str, attempt: int, redact: Redactor, started_at: float | None = None) -> None:
        self.sinks = sinks
        self.meters = RunMeters(sinks.meter_provider) if sinks.meter_provider is not None else None
        self.redact = redact
        self.run_id, self.crew, self.attempt = run_id, crew, attempt
        self.trace_id = trace_id_for(run_id)
        self._ids: dict[Key, int] = {}
        self._open: dict[Key, _Open] = {}
        self._seen: set[Key] = set()  # keys whose span was started (or ended) in this attempt
        self._lock = threading.Lock()
        self._rand = random.Random()
        self.common = {"mamabear.run_id": run_id, "mamabear.attempt": attempt}
        self.start(
            ("run",),
            f"crew {crew}",
            started_at,
            parents=(),
            attrs={
                "mamabear.crew": crew,
                "session.id": run_id,
                "langfuse.trace.name": f"mamabear {crew}",
                "gen_ai.operation.name": "invoke_workflow",
            },
        )

    # ------------------------------------------------------------ generic

    def _id(self, key: Key) -> int:
        span_id = self._ids.get(key)
        if span_id is None:
            span_id = self._ids[key] = self._rand.getrandbits(64) or 1
        return span_id

    def start(
        self,
        key: Key,
        name: str,
        ts: float | None,
        parents: tuple[Key, ...],
        attrs: dict[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        event_id: str | None = None,
    ) -> None:
        """``event_id``: the CrewAI start event's id, which CrewAI's own scope tracking names as the parent of nested events."""
        with self._lock:
            if key in self._open:
                return
            if key in self._seen:  # a second span with the same key (a retried task's agent step): a new id
                self._ids.pop(key, None)
            self._seen.add(key)
            span_id = self._id(key)
            if event_id:
                self._ids[("event", event_id)] = span_id
                self._seen.add(("event", event_id))
            self._open[key] = _Open(name, ts or time.time(), parents, {**self.common, **(attrs or {})}, kind)

    def end(
        self,
        key: Key,
        ts: float | None,
        attrs: dict[str, Any] | None = None,
        error: str | None = None,
        name: str | None = None,
        start: float | None = None,
        parents: tuple[Key, ...] = (),
        kind: SpanKind | None = None,
    ) -> None:
        """End the span; one that never started (its start event was lost) is made whole from what is given here."""
        with self._lock:
            span = self._open.pop(key, None)
            if span is None:
                if name is None:
                    return
                self._seen.add(key)
                span = _Open(name, start or ts or time.time(), parents, dict(self.common), kind or SpanKind.INTERNAL)
            elif name is not None:
                span.name = name  # e.g. an LLM call's span is named after its model once that is known
            span.attrs.update(attrs or {})
            self._emit(key, span, ts or time.time(), error)

    def _emit(self, key: Key, span: _Open, end: float, error: str | None) -> None:
        parent_id = next((self._ids[p] for p in span.parents if p in self._seen), None)
        if parent_id is None and key != ("run",):
            parent_id = self._id(("run",))
        context = SpanContext(self.trace_id, self._id(key), is_remote=False, trace_flags=SAMPLED)
        parent = SpanContext(self.trace_id, parent_id, is_remote=False, trace_flags=SAMPLED) if parent_id else None
        status = SpanStatus(StatusCode.ERROR, self.redact(error)) if error else SpanStatus(StatusCode.OK)
        attrs = {k: v for k, v in span.attrs.items() if v is not None}
        self.sinks.emit(
            ReadableSpan(
                name=span.name,
                context=context,
                parent=parent,
                resource=self.sinks.resource,
                attributes=attrs,
                kind=span.kind,
                status=status,
                start_time=int(span.start * 1e9),
                end_time=int(max(end, span.start) * 1e9),
                instrumentation_scope=SCOPE,
            )
        )

    # ------------------------------------------------------------ the tree, as an observer of the run
    # A step's parent_event_id is CrewAI's id of the enclosing step when CrewAI knew it; the agent's
    # step on the task, the task and the run are the fallbacks.

    def task_started(self, state: RunState, task: TaskState, event_id: str | None) -> None:
        self.start(
            ("task", task.position),
            f"task {task.task}",
            task.started_at,
            parents=(("run",),),
            event_id=event_id,
            attrs={
                "mamabear.task": task.task,
                "mamabear.task.position": task.position,
                "mamabear.agent": state.runs_on(task),
            },
        )

    def task_ended(self, state: RunState, task: TaskState) -> None:
        if task.status in STOPPED:
            return  # cut short by a stop: its span ends with the run's, with the stop's reason
        attrs = {
            "mamabear.task.status": str(task.status),
            "gen_ai.usage.input_tokens": task.tokens_in,
            "gen_ai.usage.output_tokens": task.tokens_out,
            "mamabear.cost_usd": round(task.cost_usd, 8),
        }
        self.end(("task", task.position), task.finished_at, attrs, task.error, name=f"task {task.task}", start=task.started_at, parents=(("run",),))
        if self.meters is not None and task.started_at is not None and task.finished_at is not None:
            failed = task.status != Status.COMPLETED
            self.meters.task({"mamabear.task": task.task, "mamabear.agent": state.runs_on(task)}, task.finished_at - task.started_at, failed)

    def agent_started(self, step: Step, ts: float) -> None:
        key = _agent_key(step)
        if key is None:
            return
        agent = step.agent or "agent"
        self.start(
            key,
            f"invoke_agent {agent}",
            ts,
            parents=_under(step.parent_event_id, None, step.position),
            event_id=step.event_id,
            attrs={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "mamabear.agent": agent,
                "mamabear.task.position": step.position,
                "langfuse.observation.type": "agent",
            },
        )

    def agent_ended(self, step: Step, ts: float, error: str | None) -> None:
        key = _agent_key(step)
        if key is not None:
            self.end(key, ts, error=error)

    def call_started(self, call: Call) -> None:
        step = call.step
        parents = _under(step.parent_event_id, _agent_key(step), step.position)
        self.start(("llm", call.call_id), "chat", call.started_at, parents=parents, kind=SpanKind.CLIENT, event_id=step.event_id)

    def call_ended(self, call: Call) -> None:
        step = call.step
        provider_name = PROVIDER_NAMES.get(provider_of(call.model or call.requested), provider_of(call.model or call.requested))
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider_name,
            "gen_ai.provider.name": provider_name,
            "gen_ai.request.model": call.requested,
            "gen_ai.response.model": call.model,
            "gen_ai.usage.input_tokens": call.tokens_in,
            "gen_ai.usage.output_tokens": call.tokens_out,
            "gen_ai.response.finish_reasons": [call.finish_reason] if call.finish_reason else None,
            "gen_ai.response.id": call.response_id,
            "gen_ai.agent.name": step.agent,
            "gen_ai.usage.cost": round(call.cost_usd, 8),
            "mamabear.cost_usd": round(call.cost_usd, 8),
            "mamabear.agent": step.agent,
            "mamabear.task.position": step.position,
            "mamabear.cache_hit": call.cache_hit,
            "mamabear.cache.saved_usd": round(call.saved_usd, 8) if call.cache_hit else None,
            "gen_ai.usage.cache_read.input_tokens": call.cached_tokens or None,
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": call.model or call.requested,
        }
        self.end(
            ("llm", call.call_id),
            call.finished_at,
            attrs,
            call.error,
            name=f"chat {call.requested}",
            start=call.started_at,
            parents=_under(None, _agent_key(step), step.position),
            kind=SpanKind.CLIENT,
        )
        if self.meters is not None:
            metric_attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name,
                "gen_ai.request.model": call.requested,
                "gen_ai.response.model": call.model or call.requested,
                "mamabear.agent": step.agent or "manager",
            }
            seconds = call.latency_ms / 1000 if call.latency_ms is not None else None
            self.meters.llm_call(metric_attrs, call.tokens_in, call.tokens_out, call.cost_usd, seconds, call.error, call.saved_usd)

    def tool_started(self, tool: ToolUse) -> None:
        step = tool.step
        self.start(
            ("tool", tool.key),
            f"execute_tool {tool.tool}",
            tool.started_at,
            parents=_under(step.parent_event_id, _agent_key(step), step.position),
            event_id=step.event_id,
            attrs={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool.tool,
                "mamabear.task.position": step.position,
                "langfuse.observation.type": "tool",
            },
        )

    def tool_ended(self, tool: ToolUse) -> None:
        step = tool.step
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool.tool,
            "mamabear.agent": step.agent,
            "mamabear.task.position": step.position,
            "mamabear.tool.ok": tool.ok,
            "langfuse.observation.type": "tool",
        }
        error = None if tool.ok else tool.error or "failed"
        name = f"execute_tool {tool.tool}"
        self.end(("tool", tool.key), tool.finished_at, attrs, error, name=name, start=tool.started_at, parents=_under(None, _agent_key(step), step.position))
        if error is not None and self.meters is not None:
            self.meters.tool_error({"gen_ai.tool.name": tool.tool, "mamabear.agent": step.agent or "manager"})

    def memory_started(self, query: MemoryQuery) -> None:
        step = query.step
        self.start(
            ("memory", query.key),
            "memory query",
            query.started_at,
            parents=_under(step.parent_event_id, _agent_key(step), step.position),
            event_id=step.event_id,
            attrs={
                "mamabear.memory.limit": query.limit,
                "db.system.name": "chromadb",
                "mamabear.task.position": step.position,
                "langfuse.observation.type": "retriever",
            },
        )

    def memory_ended(self, query: MemoryQuery) -> None:
        self.end(("memory", query.key), query.finished_at, {"mamabear.memory.results": query.results}, query.error)

    def finish(self, status: Status, error: str | None, totals: dict[str, Any]) -> list[str]:
        """End what is still open (a stopped run's running task), then the run span; drain the exporters."""
        now = time.time()
        with self._lock:
            still_open = sorted((k for k in self._open if k != ("run",)), key=lambda k: -self._open[k].start)
        for key in still_open:
            self.end(key, now, {"mamabear.task.status": str(status)} if key[0] == "task" else None, error or status)
        failed = status != Status.COMPLETED
        self.end(("run",), now, {"mamabear.status": str(status), **totals}, error or status if failed else None)
        if self.meters is not None:
            self.meters.run_ended({"mamabear.crew": self.crew, "mamabear.status": str(status)})
        return self.sinks.close()


def _agent_key(step: Step) -> Key | None:
    """The span key of an agent's step on a task."""
    return ("agent", step.agent_id, step.position) if step.agent_id else None


def _under(parent_event: str | None, agent_key: Key | None, position: int | None) -> tuple[Key, ...]:
    """Where a span hangs: the step CrewAI says encloses it, else its agent's step, else its task (else the run)."""
    found = (("event", parent_event) if parent_event else None, agent_key, ("task", position) if position else None)
    return tuple(k for k in found if k is not None)
