"""Follows a run on CrewAI's event bus: keeps the live run state, writes the store, tells observers.

CrewAI runs synchronous handlers on a thread pool, so events can arrive slightly out
of order; everything here is keyed (call id, task position) and guarded by one lock.
Usage is counted per LLM call from the call events, never from CrewAI's own summary.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mamabear.config.models import provider_of
from mamabear.config.redact import Redactor
from mamabear.engine.build import Built
from mamabear.errors import StorageError
from mamabear.llm.pricing import Pricer
from mamabear.status import Status
from mamabear.store.database import Store

OUTPUT_CAP = 20_000  # characters of a tool's output kept in the store
ORDER_WAIT_S = 2.0  # the longest a task's start waits for the previous task's end to be handled


@dataclass
class TaskState:
    position: int
    task: str
    agent: str | None
    model: str | None
    status: Status = Status.PENDING
    started_at: float | None = None
    finished_at: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    output: str | None = None
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class RunState:
    run_id: str
    crew: str
    tasks: list[TaskState]
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    activity: str = "starting"
    status: Status = Status.RUNNING
    attempt: int = 1
    cache_hits: int = 0  # in this attempt
    saved_usd: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def task(self, position: int | None) -> TaskState | None:
        return self.tasks[position - 1] if position and 0 < position <= len(self.tasks) else None

    @property
    def tokens_in(self) -> int:
        return sum(t.tokens_in for t in self.tasks)

    @property
    def tokens_out(self) -> int:
        return sum(t.tokens_out for t in self.tasks)

    @property
    def cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.tasks)

    @property
    def llm_calls(self) -> int:
        return sum(t.llm_calls for t in self.tasks)


Observer = Callable[[RunState, str | None], None]


def usage_tokens(usage: dict[str, Any] | None) -> tuple[int, int]:
    """Input and output tokens from a provider's usage dict, whatever its naming."""
    usage = usage or {}

    def first(*keys: str) -> int:
        for key in keys:
            value = usage.get(key)
            if isinstance(value, (int, float)):
                return int(value)
        return 0

    return (
        first("prompt_tokens", "input_tokens", "prompt_token_count"),
        first("completion_tokens", "output_tokens", "candidates_token_count"),
    )


def cached_tokens(usage: dict[str, Any] | None) -> int:
    """Input tokens the provider served from its prompt cache, whatever its naming."""
    usage = usage or {}
    details = usage.get("prompt_tokens_details")
    for value in (
        details.get("cached_tokens") if isinstance(details, dict) else None,
        usage.get("cached_prompt_tokens"),
        usage.get("cache_read_input_tokens"),
        usage.get("cached_content_token_count"),
    ):
        if isinstance(value, (int, float)) and value:
            return int(value)
    return 0


def configured_model(route: Any, called: str | None) -> str:
    """The configured id (provider/model) of the model a call went to: the route's own or one of its fallbacks."""
    return _configured(route.chain, called)


def _configured(chain: tuple[str, ...], called: str | None) -> str:
    for model in chain:
        if called in (model, model.partition("/")[2]):
            return model
    return called or chain[0]


EVENT_LINE_CAP = 400  # characters of an event's message: one line each, however long a provider's error


def one_line(message: str) -> str:
    """A message as one line: multi-line errors (pydantic's validation reports) are joined, long ones cut."""
    flat = " ".join(message.split())
    return flat if len(flat) <= EVENT_LINE_CAP else flat[: EVENT_LINE_CAP - 1] + "…"


class Tracker:
    def __init__(self, state: RunState, store: Store, pricer: Pricer, redact: Redactor, observers: list[Observer], guard: Any = None) -> None:
        """``guard``: the run's (llm.guard.Guard): a failing store stops the run through it, and a task that fails under a stop is not the task's failure."""
        self.state = state
        self.store = store
        self.pricer = pricer
        self.redact = redact
        self.observers = observers
        self.built: Built | None = None
        self.current: int | None = None  # position of the task running now
        self._lock = threading.RLock()
        self._task_ended = threading.Condition(self._lock)
        self._call_started: dict[str, float] = {}
        self._tool_started: dict[str, float] = {}
        self._failed_calls: set[str] = set()  # CrewAI emits LLMCallFailedEvent twice per failed call: count it once
        self._handlers: list[tuple[type, Callable]] = []
        self.after_task: list[Callable[[], None]] = []  # called once each task is recorded complete
        self.trace: Any = None  # telemetry.spans.RunTrace, when tracing is on
        self.guard = guard

    # ------------------------------------------------------------ wiring

    def attach(self, built: Built) -> None:
        from crewai.events import crewai_event_bus
        from crewai.events.types import agent_events as ae
        from crewai.events.types import llm_events as le
        from crewai.events.types import memory_events as me
        from crewai.events.types import task_events as te
        from crewai.events.types import tool_usage_events as tu

        self.built = built
        table: list[tuple[type, Callable]] = [
            (te.TaskStartedEvent, self._task_started),
            (te.TaskCompletedEvent, self._task_completed),
            (te.TaskFailedEvent, self._task_failed),
            (ae.AgentExecutionStartedEvent, self._agent_started),
            (ae.AgentExecutionCompletedEvent, self._agent_completed),
            (ae.AgentExecutionErrorEvent, self._agent_error),
            (me.MemoryQueryStartedEvent, self._memory_started),
            (me.MemoryQueryCompletedEvent, self._memory_completed),
            (me.MemoryQueryFailedEvent, self._memory_failed),
            (le.LLMCallStartedEvent, self._llm_started),
            (le.LLMCallCompletedEvent, self._llm_completed),
            (le.LLMCallFailedEvent, self._llm_failed),
            (tu.ToolUsageStartedEvent, self._tool_started_event),
            (tu.ToolUsageFinishedEvent, self._tool_finished),
            (tu.ToolUsageErrorEvent, self._tool_error),
        ]
        for event_type, method in table:
            handler = self._guarded(method)
            crewai_event_bus.on(event_type)(handler)
            self._handlers.append((event_type, handler))

    def detach(self) -> None:
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush(timeout=30)
        for event_type, handler in self._handlers:
            crewai_event_bus.off(event_type, handler)
        self._handlers.clear()

    def _guarded(self, method: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        def handler(_source: Any, event: Any) -> None:
            with self._lock:
                try:
                    method(event)
                except StorageError as exc:  # CrewAI would only log it: the run must stop, it can no longer be recorded
                    self._storage_failed(exc)

        handler.__name__ = f"mamabear_{method.__name__}"
        return handler

    def _storage_failed(self, exc: StorageError) -> None:
        """The store cannot be written (a full disk): the run must stop, as it can no longer be recorded."""
        if self.guard is not None:
            self.guard.request_stop(Status.FAILED, exc.message, exc.exit_code)

    # ------------------------------------------------------------ what the run's parts tell it (llm CallEvents,
    # memory MemoryEvents, the sandbox LinkEvents, CheckpointEvents): one typed seam, no lambdas

    def note(self, kind: str, message: str, data: dict | None = None) -> None:
        """An event of the run, for the task in hand."""
        self.event(kind, message, self.current, data=data)

    def waiting(self, why: str | None, kind: str) -> None:
        """A backoff or quota wait begins (logged, shown) or ends (the view goes back to thinking)."""
        self.state.activity = why or "thinking"
        if why:
            self.event(kind, why, self.current)
        else:
            self.notify(None)

    def notify(self, line: str | None) -> None:
        for observer in self.observers:
            observer(self.state, line)

    def event(self, kind: str, message: str, position: int | None = None, agent: str | None = None, data: dict | None = None, ts: float | None = None) -> None:
        message = one_line(self.redact(message) or "")
        if data:  # an event's data (a memory query, a saved record) goes through the same redactor as its message
            data = self.redact.data(data)
        try:
            self.store.add_event(self.state.run_id, kind, message, position, agent, data, ts, self.state.attempt)
        except StorageError as exc:
            self._storage_failed(exc)
        self.notify(message)

    # ------------------------------------------------------------ lookups

    def _position(self, event: Any) -> int | None:
        task_id = getattr(event, "task_id", None)
        task = getattr(event, "task", None)
        if task_id is None and task is not None:
            task_id = str(task.id)
        if self.built and task_id in self.built.positions:
            return self.built.positions[task_id]
        return self.current  # e.g. work a hierarchical manager delegated on a task of its own making

    @staticmethod
    def _agent_id(event: Any) -> str | None:
        agent_id = getattr(event, "agent_id", None)
        if agent_id is None and getattr(event, "agent", None) is not None:
            agent_id = str(event.agent.id)
        return agent_id

    def _planned(self, agent_id: str | None) -> Any:
        return self.built.agents.get(agent_id) if self.built and agent_id else None

    def _agent(self, event: Any) -> tuple[str | None, str | None]:
        """The specialist id and the configured model id behind an event."""
        planned = self._planned(self._agent_id(event))
        called = getattr(event, "model", None)
        if planned:
            return planned.id, configured_model(planned.route, called)
        return self._caller(getattr(event, "agent_role", None), called)

    @staticmethod
    def _caller(agent: str | None, called: str | None) -> tuple[str | None, str | None]:
        """A call with no agent of ours: named by the role its LLM was made for (the memory's), with its configured id."""
        from mamabear.llm.resilience import CALLER

        caller = CALLER.get()
        if caller is None or agent is not None:
            return agent, called
        role, chain = caller
        return role or agent, _configured(chain, called)

    def _agent_key(self, event: Any, position: int | None) -> tuple | None:
        """The span key of the agent's step on the task an event belongs to."""
        agent_id = self._agent_id(event)
        return ("agent", agent_id, position) if agent_id else None

    @staticmethod
    def _ts(event: Any) -> float:
        stamp = getattr(event, "timestamp", None)
        return stamp.timestamp() if stamp else time.time()

    # ------------------------------------------------------------ tasks

    def _task_started(self, event: Any) -> None:
        position = self._position(event)
        task = self.state.task(position)
        if task is None or task.status == Status.RUNNING:
            return
        position = task.position
        # CrewAI hands events to a thread pool, so task N+1's start can be handled before task N's end.
        # Wait (briefly) for the end of every earlier task that is not run asynchronously, so the record is in order.
        self._task_ended.wait_for(lambda: not self._unfinished_before(position), timeout=ORDER_WAIT_S)
        self.current = position
        task.status, task.started_at = Status.RUNNING, self._ts(event)
        self.state.activity = f"{task.agent or 'manager'} thinking"
        self.store.update_task(self.state.run_id, position, status=Status.RUNNING, started_at=task.started_at)
        self.event(
            "task_started", f"task {position}/{len(self.state.tasks)} {task.task} started ({task.agent or 'manager'})", position, task.agent, ts=task.started_at
        )
        if self.trace is not None:
            self.trace.task_started(position, task.task, task.agent, task.started_at, event.event_id)

    def _unfinished_before(self, position: int) -> bool:
        crew_tasks = self.built.crew.tasks if self.built is not None else []
        return any(
            t.status == Status.RUNNING and not (t.position <= len(crew_tasks) and getattr(crew_tasks[t.position - 1], "async_execution", False))
            for t in self.state.tasks[: position - 1]
        )

    def _task_completed(self, event: Any) -> None:
        position = self._position(event)
        task = self.state.task(position)
        if task is None or task.status == Status.COMPLETED:
            return
        position = task.position
        output = getattr(getattr(event, "output", None), "raw", None)
        self.complete_task(position, output, self._ts(event))

    def complete_task(self, position: int, output: str | None, finished_at: float | None = None) -> None:
        with self._lock:
            task = self.state.task(position)
            if task is None or task.status == Status.COMPLETED:
                return
            task.status, task.finished_at, task.output = Status.COMPLETED, finished_at or time.time(), self.redact(output)
            if task.started_at is None:
                task.started_at = task.finished_at
            self.store.update_task(
                self.state.run_id, position, status=Status.COMPLETED, output=task.output, started_at=task.started_at, finished_at=task.finished_at
            )
            self.event(
                "task_completed",
                f"task {position}/{len(self.state.tasks)} {task.task} completed in {task.seconds:.1f}s "
                f"({task.tokens_in}+{task.tokens_out} tokens, ${task.cost_usd:.4f})",
                position,
                task.agent,
                ts=task.finished_at,
            )
            if self.trace is not None:
                self.trace.task_ended(
                    position,
                    task.task,
                    task.agent,
                    Status.COMPLETED,
                    task.finished_at,
                    tokens_in=task.tokens_in,
                    tokens_out=task.tokens_out,
                    cost=task.cost_usd,
                    started=task.started_at,
                )
            self._task_ended.notify_all()
        for hook in self.after_task:
            hook()

    def _task_failed(self, event: Any) -> None:
        position = self._position(event)
        task = self.state.task(position)
        if task is None:
            return
        position = task.position
        stop = self.guard.stop if self.guard is not None else None
        if stop is not None:  # not the task's failure: the run was stopped (the run's end settles the task)
            self.event("task_stopped", f"task {position} {task.task} stopped: the run {stop.reason}", position, task.agent)
            return
        task.status, task.finished_at, task.error = Status.FAILED, self._ts(event), self.redact(str(event.error))
        self.store.update_task(self.state.run_id, position, status=Status.FAILED, error=task.error, finished_at=task.finished_at)
        self.event("task_failed", f"task {position} {task.task} failed: {task.error}", position, task.agent)
        self._task_ended.notify_all()
        if self.trace is not None:
            self.trace.task_ended(
                position, task.task, task.agent, Status.FAILED, task.finished_at, task.error, task.tokens_in, task.tokens_out, task.cost_usd, task.started_at
            )

    def _agent_started(self, event: Any) -> None:
        agent, _ = self._agent(event)
        self.state.activity = f"{agent} thinking"
        if self.trace is not None:
            position = self._position(event)
            self.trace.agent_started(self._agent_key(event, position), agent or "agent", position, self._ts(event), event.event_id, event.parent_event_id)
        self.notify(None)

    def _agent_completed(self, event: Any) -> None:
        if self.trace is not None:
            self.trace.agent_ended(self._agent_key(event, self._position(event)), self._ts(event))

    def _agent_error(self, event: Any) -> None:
        if self.trace is not None:
            self.trace.agent_ended(self._agent_key(event, self._position(event)), self._ts(event), self.redact(str(event.error)))

    # ------------------------------------------------------------ memory queries (spans only; the store has memory events)

    def _memory_started(self, event: Any) -> None:
        if self.trace is not None:
            position = self._position(event)
            self.trace.memory_started(
                ("memory", event.event_id), self._agent_key(event, position), position, event.limit, self._ts(event), event.event_id, event.parent_event_id
            )

    def _memory_completed(self, event: Any) -> None:
        if self.trace is not None:
            results = event.results
            self.trace.memory_ended(("memory", event.started_event_id), self._ts(event), len(results) if isinstance(results, list) else None)

    def _memory_failed(self, event: Any) -> None:
        if self.trace is not None:
            self.trace.memory_ended(("memory", event.started_event_id), self._ts(event), None, self.redact(event.error))

    # ------------------------------------------------------------ LLM calls

    def _llm_started(self, event: Any) -> None:
        agent, model = self._agent(event)
        started = self._ts(event)
        self._call_started[event.call_id] = started
        self.state.activity = f"{agent} calling {model}"
        position = self._position(event)
        self.store.save_llm_call(
            event.call_id, self.state.run_id, task_position=position, agent=agent, model=model, started_at=started, attempt=self.state.attempt
        )
        if self.trace is not None:
            self.trace.llm_started(event.call_id, self._agent_key(event, position), position, started, event.event_id, event.parent_event_id)
        self.notify(None)

    def _finish_call(self, event: Any) -> tuple[str | None, str | None, int | None, float, float | None]:
        agent, model = self._agent(event)
        finished = self._ts(event)
        started = self._call_started.pop(event.call_id, None)
        latency = (finished - started) * 1000 if started is not None else None
        return agent, model, self._position(event), finished, latency

    def _trace_call(
        self, event: Any, agent: str | None, model: str | None, position: int | None, finished: float, latency: float | None, **values: Any
    ) -> None:
        if self.trace is None:
            return
        planned = self._planned(self._agent_id(event))
        requested = planned.route.model if planned and planned.route else (model or "")
        started = finished - latency / 1000 if latency is not None else None
        self.trace.llm_ended(
            event.call_id,
            agent_key=self._agent_key(event, position),
            position=position,
            agent=agent,
            provider=provider_of(model or requested),
            request_model=requested,
            response_model=model,
            ts=finished,
            started=started,
            **values,
        )

    def _llm_completed(self, event: Any) -> None:
        agent, model, position, finished, latency = self._finish_call(event)
        tokens_in, tokens_out = usage_tokens(event.usage)
        cached = cached_tokens(event.usage)
        cost = self.pricer.cost(model or "", tokens_in, tokens_out, cached)
        self.store.save_llm_call(
            event.call_id,
            self.state.run_id,
            task_position=position,
            agent=agent,
            model=model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            latency_ms=latency,
            outcome="ok",
            finish_reason=event.finish_reason,
            finished_at=finished,
            cached_tokens=cached or None,
        )
        task = self.state.task(position)
        if task is not None:
            task.tokens_in += tokens_in
            task.tokens_out += tokens_out
            task.cost_usd += cost
            task.llm_calls += 1
        self.state.activity = f"{agent} thinking"
        took = f" in {latency:.0f}ms" if latency is not None else ""
        self.event(
            "llm_call", f"{agent} <- {model}: {tokens_in}+{tokens_out} tokens, ${cost:.4f}{took}", position, agent, {"call_id": event.call_id}, ts=finished
        )
        self._trace_call(
            event,
            agent,
            model,
            position,
            finished,
            latency,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            finish_reason=event.finish_reason,
            response_id=event.response_id,
            cached_tokens=cached,
        )

    def _llm_failed(self, event: Any) -> None:
        if event.call_id in self._failed_calls:
            return
        self._failed_calls.add(event.call_id)
        agent, model, position, finished, latency = self._finish_call(event)
        error = self.redact(str(event.error))
        self.store.save_llm_call(
            event.call_id,
            self.state.run_id,
            task_position=position,
            agent=agent,
            model=model,
            outcome="error",
            error=error,
            latency_ms=latency,
            finished_at=finished,
        )
        task = self.state.task(position)
        if task is not None:
            task.llm_calls += 1
        self.event("llm_error", f"{agent} <- {model} failed: {error}", position, agent, {"call_id": event.call_id}, ts=finished)
        self._trace_call(event, agent, model, position, finished, latency, tokens_in=0, tokens_out=0, cost=0.0, error=error)

    def cache_hit(self, hit: Any) -> None:
        """A call the response cache answered (no CrewAI event exists for it): recorded like a call, at no cost."""
        with self._lock:
            task_id = str(hit.task.id) if hit.task is not None else None
            position = self.built.positions.get(task_id, self.current) if self.built and task_id else self.current
            agent_id = str(hit.agent.id) if hit.agent is not None else None
            planned = self._planned(agent_id)
            agent = planned.id if planned else self._caller(getattr(hit.agent, "role", None), hit.answered_by)[0]
            call_id, finished = f"cache-{uuid.uuid4().hex}", time.time()
            self.store.save_llm_call(
                call_id,
                self.state.run_id,
                task_position=position,
                agent=agent,
                model=hit.answered_by,
                started_at=finished - hit.seconds,
                finished_at=finished,
                latency_ms=hit.seconds * 1000,
                outcome="ok",
                cache_hit=True,
                saved_usd=hit.saved_usd,
                attempt=self.state.attempt,
            )
            task = self.state.task(position)
            if task is not None:
                task.llm_calls += 1
            self.state.cache_hits += 1
            self.state.saved_usd += hit.saved_usd
            self.event("llm_cache_hit", f"{agent} <- cache ({hit.answered_by}): saved ${hit.saved_usd:.4f}", position, agent, {"call_id": call_id}, ts=finished)
            if self.trace is not None:
                agent_key = ("agent", agent_id, position) if agent_id else None
                self.trace.llm_ended(
                    call_id,
                    agent_key=agent_key,
                    position=position,
                    agent=agent,
                    provider=provider_of(hit.answered_by),
                    request_model=hit.model,
                    response_model=hit.answered_by,
                    tokens_in=0,
                    tokens_out=0,
                    cost=0.0,
                    ts=finished,
                    started=finished - hit.seconds,
                    cache_hit=True,
                    saved=hit.saved_usd,
                )

    # ------------------------------------------------------------ tool calls

    def _tool_key(self, event: Any) -> str:
        return f"{getattr(event, 'agent_id', '')}:{event.tool_name}"

    def _tool_started_event(self, event: Any) -> None:
        agent, _ = self._agent(event)
        self._tool_started[self._tool_key(event)] = self._ts(event)
        if self.trace is not None:
            position = self._position(event)
            self.trace.tool_started(
                ("tool", event.event_id), event.tool_name, self._agent_key(event, position), position, self._ts(event), event.event_id, event.parent_event_id
            )
        self.state.activity = f"{agent} running tool {event.tool_name}"
        self.notify(None)

    def _record_tool(self, event: Any, ok: bool, output: Any, error: str | None) -> None:
        agent, _ = self._agent(event)
        position = self._position(event)
        started = getattr(event, "started_at", None)
        started_ts = started.timestamp() if started else self._tool_started.pop(self._tool_key(event), None)
        finished = getattr(event, "finished_at", None)
        finished_ts = finished.timestamp() if finished else self._ts(event)
        duration = (finished_ts - started_ts) * 1000 if started_ts is not None else None
        arguments = event.tool_args if isinstance(event.tool_args, str) else json.dumps(event.tool_args, default=str, ensure_ascii=False)
        self.store.add_tool_call(
            self.state.run_id,
            task_position=position,
            agent=agent,
            tool=event.tool_name,
            arguments=self.redact(arguments),
            output=self.redact(None if output is None else str(output)[:OUTPUT_CAP]),
            ok=ok,
            error=self.redact(error),
            started_at=started_ts,
            duration_ms=duration,
            attempt=self.state.attempt,
        )
        self.state.activity = f"{agent} thinking"
        verdict = "ok" if ok else f"failed: {error}"
        self.event("tool_call", f"{agent} ran tool {event.tool_name}: {verdict}", position, agent)
        if self.trace is not None:
            self.trace.tool_ended(
                ("tool", event.started_event_id or event.event_id),
                event.tool_name,
                agent,
                self._agent_key(event, position),
                position,
                finished_ts,
                started_ts,
                None if ok else self.redact(error or "failed"),
            )

    def _tool_finished(self, event: Any) -> None:
        failure = getattr(event, "failure", None)
        self._record_tool(event, failure is None, event.output, None if failure is None else str(failure))

    def _tool_error(self, event: Any) -> None:
        self._record_tool(event, False, None, str(event.error))
