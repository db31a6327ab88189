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
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from mamabear import __version__
from mamabear.config.redact import Redactor
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


class RunTrace:
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
        status = Status(StatusCode.ERROR, self.redact(error)) if error else Status(StatusCode.OK)
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

    # ------------------------------------------------------------ the tree
    # ``parent_event`` is CrewAI's parent_event_id of the start event: the exact enclosing step when
    # CrewAI knew it; the agent's step on the task, the task and the run are the fallbacks.

    def task_started(self, position: int, task: str, agent: str | None, ts: float | None, event_id: str | None = None) -> None:
        self.start(
            ("task", position),
            f"task {task}",
            ts,
            parents=(("run",),),
            event_id=event_id,
            attrs={
                "mamabear.task": task,
                "mamabear.task.position": position,
                "mamabear.agent": agent or "manager",
            },
        )

    def task_ended(
        self,
        position: int,
        task: str,
        agent: str | None,
        status: str,
        ts: float | None,
        error: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: float = 0.0,
        started: float | None = None,
    ) -> None:
        attrs = {
            "mamabear.task.status": status,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            "mamabear.cost_usd": round(cost, 8),
        }
        self.end(("task", position), ts, attrs, error, name=f"task {task}", start=started, parents=(("run",),))
        if self.meters is not None and started is not None and ts is not None:
            self.meters.task({"mamabear.task": task, "mamabear.agent": agent or "manager"}, ts - started, status == "failed")

    def agent_started(
        self, agent_key: Key, agent: str, position: int | None, ts: float | None, event_id: str | None = None, parent_event: str | None = None
    ) -> None:
        self.start(
            agent_key,
            f"invoke_agent {agent}",
            ts,
            parents=_under(parent_event, None, position),
            event_id=event_id,
            attrs={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "mamabear.agent": agent,
                "mamabear.task.position": position,
                "langfuse.observation.type": "agent",
            },
        )

    def agent_ended(self, agent_key: Key, ts: float | None, error: str | None = None) -> None:
        self.end(agent_key, ts, error=error)

    def llm_started(
        self, call_id: str, agent_key: Key | None, position: int | None, ts: float | None, event_id: str | None = None, parent_event: str | None = None
    ) -> None:
        self.start(("llm", call_id), "chat", ts, parents=_under(parent_event, agent_key, position), kind=SpanKind.CLIENT, event_id=event_id)

    def llm_ended(
        self,
        call_id: str,
        *,
        agent_key: Key | None,
        position: int | None,
        agent: str | None,
        provider: str,
        request_model: str,
        response_model: str | None,
        tokens_in: int,
        tokens_out: int,
        cost: float,
        ts: float | None,
        started: float | None = None,
        finish_reason: str | None = None,
        response_id: str | None = None,
        error: str | None = None,
        cache_hit: bool = False,
        saved: float = 0.0,
        cached_tokens: int = 0,
    ) -> None:
        provider_name = PROVIDER_NAMES.get(provider, provider)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider_name,
            "gen_ai.provider.name": provider_name,
            "gen_ai.request.model": request_model,
            "gen_ai.response.model": response_model,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": tokens_out,
            "gen_ai.response.finish_reasons": [finish_reason] if finish_reason else None,
            "gen_ai.response.id": response_id,
            "gen_ai.agent.name": agent,
            "gen_ai.usage.cost": round(cost, 8),
            "mamabear.cost_usd": round(cost, 8),
            "mamabear.agent": agent,
            "mamabear.task.position": position,
            "mamabear.cache_hit": cache_hit,
            "mamabear.cache.saved_usd": round(saved, 8) if cache_hit else None,
            "gen_ai.usage.cache_read.input_tokens": cached_tokens or None,
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": response_model or request_model,
        }
        self.end(
            ("llm", call_id), ts, attrs, error, name=f"chat {request_model}", start=started, parents=_under(None, agent_key, position), kind=SpanKind.CLIENT
        )
        if self.meters is not None:
            metric_attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider_name,
                "gen_ai.request.model": request_model,
                "gen_ai.response.model": response_model or request_model,
                "mamabear.agent": agent or "manager",
            }
            seconds = (ts - started) if (ts is not None and started is not None) else None
            self.meters.llm_call(metric_attrs, tokens_in, tokens_out, cost, seconds, error, saved)

    def tool_started(
        self,
        tool_key: Key,
        tool: str,
        agent_key: Key | None,
        position: int | None,
        ts: float | None,
        event_id: str | None = None,
        parent_event: str | None = None,
    ) -> None:
        self.start(
            tool_key,
            f"execute_tool {tool}",
            ts,
            parents=_under(parent_event, agent_key, position),
            event_id=event_id,
            attrs={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "mamabear.task.position": position,
                "langfuse.observation.type": "tool",
            },
        )

    def tool_ended(
        self,
        tool_key: Key,
        tool: str,
        agent: str | None,
        agent_key: Key | None,
        position: int | None,
        ts: float | None,
        started: float | None,
        error: str | None,
    ) -> None:
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "mamabear.agent": agent,
            "mamabear.task.position": position,
            "mamabear.tool.ok": error is None,
            "langfuse.observation.type": "tool",
        }
        self.end(tool_key, ts, attrs, error, name=f"execute_tool {tool}", start=started, parents=_under(None, agent_key, position))
        if error is not None and self.meters is not None:
            self.meters.tool_error({"gen_ai.tool.name": tool, "mamabear.agent": agent or "manager"})

    def memory_started(
        self,
        memory_key: Key,
        agent_key: Key | None,
        position: int | None,
        limit: int | None,
        ts: float | None,
        event_id: str | None = None,
        parent_event: str | None = None,
    ) -> None:
        self.start(
            memory_key,
            "memory query",
            ts,
            parents=_under(parent_event, agent_key, position),
            event_id=event_id,
            attrs={
                "mamabear.memory.limit": limit,
                "db.system.name": "chromadb",
                "mamabear.task.position": position,
                "langfuse.observation.type": "retriever",
            },
        )

    def memory_ended(self, memory_key: Key, ts: float | None, results: int | None, error: str | None = None) -> None:
        self.end(memory_key, ts, {"mamabear.memory.results": results}, error)

    def finish(self, status: str, error: str | None, totals: dict[str, Any]) -> list[str]:
        """End what is still open (a stopped run's running task), then the run span; drain the exporters."""
        now = time.time()
        with self._lock:
            still_open = sorted((k for k in self._open if k != ("run",)), key=lambda k: -self._open[k].start)
        for key in still_open:
            self.end(key, now, {"mamabear.task.status": status} if key[0] == "task" else None, error or status)
        failed = status != "completed"
        self.end(("run",), now, {"mamabear.status": status, **totals}, error or status if failed else None)
        return self.sinks.close()


def _under(parent_event: str | None, agent_key: Key | None, position: int | None) -> tuple[Key, ...]:
    """Where a span hangs: the step CrewAI says encloses it, else its agent's step, else its task (else the run)."""
    found = (("event", parent_event) if parent_event else None, agent_key, ("task", position) if position else None)
    return tuple(k for k in found if k is not None)
