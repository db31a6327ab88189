"""Follows a run on CrewAI's event bus: keeps the live run state and tells the run's observers what happened.

CrewAI runs synchronous handlers on a thread pool, so events can arrive slightly out
of order; everything here is keyed (call id, task position) and guarded by one lock.
Usage is counted per LLM call from the call events, never from CrewAI's own summary. Each event
becomes a typed record (``mamabear.observe``), redacted once here, that every observer gets: the
store writer, the tracer and the progress view.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mamabear.config.money import fmt_usd
from mamabear.config.redact import Redactor
from mamabear.engine.build import Built
from mamabear.errors import EXIT_INTERRUPTED, StorageError, StoreUnavailable
from mamabear.llm.pricing import Pricer
from mamabear.observe import Call, Event, MemoryQuery, RunObserver, RunState, Step, TaskState, ToolUse
from mamabear.status import Status

OUTPUT_CAP = 20_000  # characters of a tool's output kept in the store
ORDER_WAIT_S = 2.0  # the longest a task's start waits for the previous task's end to be handled


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
    def __init__(self, state: RunState, pricer: Pricer, redact: Redactor, observers: list[RunObserver], guard: Any = None) -> None:
        """``guard``: the run's (llm.guard.Guard): a failing store stops the run through it, and a task that fails under a stop is not the task's failure."""
        self.state = state
        self.pricer = pricer
        self.redact = redact
        self.observers = observers
        self.built: Built | None = None
        self.current: int | None = None  # position of the task running now
        self._lock = threading.RLock()
        self._task_ended = threading.Condition(self._lock)
        self._calls: dict[str, Call] = {}  # calls started and not yet ended
        self._tool_started: dict[str, float] = {}
        self._failed_calls: set[str] = set()  # CrewAI emits LLMCallFailedEvent twice per failed call: count it once
        self._handlers: list[tuple[type, Callable]] = []
        self.after_task: list[Callable[[], None]] = []  # called once each task is recorded complete
        self.guard = guard
        self.unguarded_calls = 0  # calls made by an LLM that is not mamabear's (see _unguarded)
        self.holding: set[int] = set()  # rows that hold the rows after them while they run (a flow's methods)

    # ------------------------------------------------------------ wiring

    def attach(self, built: Built) -> None:
        from crewai.events import crewai_event_bus
        from crewai.events.types import agent_events as ae
        from crewai.events.types import llm_events as le
        from crewai.events.types import llm_guardrail_events as ge
        from crewai.events.types import mcp_events as mcp
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
            (ge.LLMGuardrailCompletedEvent, self._guardrail_completed),
            (mcp.MCPConnectionFailedEvent, self._mcp_failed),
        ]
        for event_type, method in table:
            handler = self._guarded(method)
            crewai_event_bus.on(event_type)(handler)
            self._handlers.append((event_type, handler))

    def use(self, built: Built) -> None:
        """Place what happens from now on against ``built`` (a crew a flow's method starts, then the flow again), the
        handlers kept; the events of what came before are handled first."""
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush(timeout=30)
        self.built = built

    def detach(self) -> None:
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush(timeout=30)
        for event_type, handler in self._handlers:
            crewai_event_bus.off(event_type, handler)
        self._handlers.clear()

    def _guarded(self, method: Callable[[Any], None]) -> Callable[[Any, Any], None]:
        def handler(_source: Any, event: Any) -> None:
            with self._lock:
                method(event)

        handler.__name__ = f"mamabear_{method.__name__}"
        return handler

    def _tell(self, method: str, *args: Any) -> None:
        """Hand a record to every observer. A store that cannot be written (a full disk) stops the run, as it can
        no longer be recorded; the other observers are still told (CrewAI would only log the error)."""
        failed = self._tell_all(method, *args)
        if failed is not None:
            self._storage_failed(failed)

    def _tell_all(self, method: str, *args: Any) -> StorageError | None:
        """Every observer is told; the first StorageError is returned, not raised."""
        failed = None
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except StorageError as exc:
                failed = failed or exc
        return failed

    def _storage_failed(self, exc: StorageError) -> None:
        if self.guard is not None:  # a store that stopped answering is no fault of the run: it is resumed
            status = Status.INTERRUPTED if isinstance(exc, StoreUnavailable) else Status.FAILED
            self.guard.request_stop(status, exc.message, EXIT_INTERRUPTED if status == Status.INTERRUPTED else exc.exit_code)

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
            self.changed()

    def changed(self, activity: str | None = None) -> None:
        if activity is not None:
            self.state.activity = activity
        self._tell("changed", self.state)

    def event(
        self,
        kind: str,
        message: str,
        position: int | None = None,
        agent: str | None = None,
        data: dict | None = None,
        ts: float | None = None,
        replaces: bool = False,
    ) -> None:
        message = one_line(self.redact(message) or "")
        if data:  # an event's data (a memory query, a saved record) goes through the same redactor as its message
            data = self.redact.data(data)
        self._tell("event", self.state, Event(kind, message, position, agent, data, ts, replaces))

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
        """A call with no agent of ours: the memory's (its role), or a side call of a specialist's LLM (a conversion,
        a guardrail's judge, a knowledge query): that specialist's. With its configured model id."""
        from mamabear.llm.resilience import CALLER

        caller = CALLER.get()
        if caller is None:
            return agent, called
        return caller.role or caller.serves or agent, _configured(caller.chain, called)

    def _step(self, event: Any, agent: str | None = None) -> Step:
        """Where an event happened: its task, its specialist, and CrewAI's ids that place it in the step tree."""
        if agent is None:
            agent, _ = self._agent(event)
        return Step(self._position(event), agent, self._agent_id(event), getattr(event, "event_id", None), getattr(event, "parent_event_id", None))

    def _requested(self, event: Any, model: str | None) -> str:
        """The configured id the agent's route asked for (the call may have gone to a fallback)."""
        planned = self._planned(self._agent_id(event))
        return planned.route.model if planned and planned.route else (model or "")

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
        self.start_task(position, self._ts(event), event.event_id)

    def start_task(self, position: int, started_at: float | None = None, event_id: str | None = None, holds: bool = False) -> None:
        """The row at ``position`` is running. ``holds``: a step that holds the rows after it while they run (a flow's
        method, whose crews' tasks are rows of their own): the tasks after it do not wait for it to end."""
        task = self.state.task(position)
        if task is None:
            return
        if holds:
            self.holding.add(position)
        self.current = position
        task.status, task.started_at, task.finished_at, task.error = Status.RUNNING, started_at or time.time(), None, None
        self.state.activity = f"{self.state.runs_on(task)} thinking"
        self._tell("task_started", self.state, task, event_id)
        self.event(
            "task_started",
            f"task {position}/{len(self.state.tasks)} {task.task} started ({self.state.runs_on(task)})",
            position,
            task.agent,
            ts=task.started_at,
        )

    def _unfinished_before(self, position: int) -> bool:
        crew_tasks = self.built.crew.tasks if self.built is not None else []
        return any(
            t.status == Status.RUNNING
            and t.position not in self.holding
            and not (t.position <= len(crew_tasks) and getattr(crew_tasks[t.position - 1], "async_execution", False))
            for t in self.state.tasks[: position - 1]
        )

    def _task_completed(self, event: Any) -> None:
        position = self._position(event)
        task = self.state.task(position)
        if task is None or task.status == Status.COMPLETED:
            return
        output = getattr(getattr(event, "output", None), "raw", None)
        self.complete_task(task.position, output, self._ts(event))

    def complete_task(self, position: int, output: str | None, finished_at: float | None = None) -> None:
        with self._lock:
            task = self.state.task(position)
            if task is None or task.status == Status.COMPLETED:
                return
            # A secret in the output is stored as ${NAME}: a resume puts the value back (the next tasks' context), nothing at rest holds it.
            task.status, task.finished_at = Status.COMPLETED, finished_at or time.time()
            task.output = self.redact.referenced(output) if output is not None else None
            if task.started_at is None:
                task.started_at = task.finished_at
            self._tell("task_ended", self.state, task)
            cost = fmt_usd(task.cost_usd, task.unpriced_calls)
            self.event(
                "task_completed",
                f"task {position}/{len(self.state.tasks)} {task.task} completed in {task.seconds:.1f}s ({task.tokens_in}+{task.tokens_out} tokens, {cost})",
                position,
                task.agent,
                ts=task.finished_at,
            )
            self._task_ended.notify_all()
        for hook in self.after_task:  # e.g. saving a cloud workspace: the store it writes may be full too
            try:
                hook()
            except StorageError as exc:
                self._storage_failed(exc)

    def _settle(self, task: TaskState, status: Status, error: str | None) -> None:
        task.status = Status.FAILED if status == Status.FAILED else status
        task.finished_at = task.finished_at or time.time()
        task.error = error if status == Status.FAILED else None
        failed = self._tell_all("task_ended", self.state, task)
        if failed is not None:
            raise failed

    def ended_elsewhere(self, row: Any) -> None:
        """A step another worker carried out (a mission's step sent to the pool) as the store has it: its status,
        output and usage come into this run's state, for the view (its events are its own attempt's; the guard reads
        the run's spend from the store)."""
        with self._lock:
            task = self.state.task(row.position)
            if task is None:
                return
            task.status, task.output, task.error = row.status, row.output, row.error
            task.started_at, task.finished_at = row.started_at, row.finished_at
            task.tokens_in, task.tokens_out, task.cost_usd, task.llm_calls = row.tokens_in, row.tokens_out, row.cost_usd, row.llm_calls
            task.unpriced_calls = row.unpriced_calls
        self.changed()

    def _task_failed(self, event: Any) -> None:
        position = self._position(event)
        task = self.state.task(position)
        if task is None:
            return
        position = task.position
        stop = self.guard.stop if self.guard is not None else None
        if stop is not None:  # not the task's failure: the run was stopped (the run's end settles the task)
            why = stop.reason if stop.status == Status.FAILED else f"the run {stop.reason}"  # a failed stop says it all
            self.event("task_stopped", f"task {position} {task.task} stopped: {why}", position, task.agent)
            return
        task.status, task.finished_at, task.error = Status.FAILED, self._ts(event), self.redact(str(event.error))
        self._tell("task_ended", self.state, task)
        self.event("task_failed", f"task {position} {task.task} failed: {task.error}", position, task.agent)
        self._task_ended.notify_all()

    def settle_running_task(self, status: Status, error: str | None) -> TaskState | None:
        """The task that was running when the run ended: failed with the error, or stopped (it reruns on resume).

        A task whose own failure was already told is only returned. The lock is waited for briefly: the run's end
        may come from the abandon timer while a handler is stuck. Raises StorageError when the store cannot record
        it (the run's end reports that); the other observers are told all the same."""
        locked = self._lock.acquire(timeout=ORDER_WAIT_S)
        try:
            for position in sorted(self.holding - {self.current}, reverse=True):  # a flow's method the task was in
                held = self.state.task(position)
                if held is not None and held.status == Status.RUNNING:
                    self._settle(held, status, error)
            task = self.state.task(self.current)
            if task is None or task.status == Status.COMPLETED:
                return None
            if task.status == Status.FAILED and task.finished_at is not None:
                return task  # its failure was recorded when CrewAI reported it
            self._settle(task, status, error)
            return task
        finally:
            if locked:
                self._lock.release()

    def _agent_started(self, event: Any) -> None:
        step = self._step(event)
        self.state.activity = f"{step.agent} thinking"
        self._tell("agent_started", step, self._ts(event))
        self.changed()

    def _agent_completed(self, event: Any) -> None:
        self._tell("agent_ended", self._step(event), self._ts(event), None)

    def _agent_error(self, event: Any) -> None:
        self._tell("agent_ended", self._step(event), self._ts(event), self.redact(str(event.error)))

    def _guardrail_completed(self, event: Any) -> None:
        """A task's guardrail judged its answer: passed, or failed and the task tries again (CrewAI's guardrail_max_retries)."""
        position = self._position(event)
        name = event.guardrail_name or event.guardrail_type or "guardrail"
        check = f"guardrail {str(name).splitlines()[0][:80]} of task {position}"
        if event.success:
            self.event("guardrail_passed", f"{check} passed" + (f" after {event.retry_count} retries" if event.retry_count else ""), position)
        else:
            data = {"guardrail": str(name)[:200], "retry": event.retry_count, "error": str(event.error or "")[:500]}
            self.event("guardrail_failed", f"{check} failed (try {event.retry_count + 1}): {event.error}", position, data=data)

    def _mcp_failed(self, event: Any) -> None:
        """An MCP server an agent names in Python (``mcps=``) that CrewAI could not reach: its tools are left out, as
        under `crewai run`, and the run says so (CrewAI's own warning is library chatter, off without --debug)."""
        where = event.server_url or event.server_name
        who = f" of agent {event.agent_role.strip()}" if event.agent_role else ""
        data = {"server": event.server_name, "url": event.server_url, "error": str(event.error)[:500]}
        self.event("mcp_failed", f"warning: the MCP server {where}{who} could not be reached ({event.error}); its tools are left out", self.current, data=data)

    # ------------------------------------------------------------ memory queries (spans only; the store has memory events)

    def _memory_started(self, event: Any) -> None:
        self._tell("memory_started", MemoryQuery(event.event_id, self._step(event), self._ts(event), limit=event.limit))

    def _memory_completed(self, event: Any) -> None:
        results = len(event.results) if isinstance(event.results, list) else None
        self._tell("memory_ended", MemoryQuery(event.started_event_id, self._step(event), None, finished_at=self._ts(event), results=results))

    def _memory_failed(self, event: Any) -> None:
        query = MemoryQuery(event.started_event_id, self._step(event), None, finished_at=self._ts(event), error=self.redact(event.error))
        self._tell("memory_ended", query)

    # ------------------------------------------------------------ LLM calls

    def _llm_started(self, event: Any) -> None:
        agent, model = self._agent(event)
        call = self._calls[event.call_id] = Call(event.call_id, self._step(event, agent), model, self._requested(event, model), self._ts(event))
        self.state.activity = f"{agent} calling {model}"
        self._tell("call_started", call)
        self.changed()

    def _ended_call(self, event: Any, outcome: str) -> Call:
        """The call an end event closes: the one its start opened, or one made whole from the end (its start was lost)."""
        agent, model = self._agent(event)
        started = self._calls.pop(event.call_id, None)
        call = Call(
            event.call_id,
            self._step(event, agent),
            model,
            self._requested(event, model),
            started.started_at if started is not None else None,
            self._ts(event),
            outcome,
        )
        return call

    def _count(self, call: Call) -> None:
        task = self.state.task(call.step.position)
        if task is not None:
            task.tokens_in += call.tokens_in
            task.tokens_out += call.tokens_out
            task.cost_usd += call.cost_usd
            task.llm_calls += 1
            task.unpriced_calls += 1 if call.unpriced else 0

    def _llm_completed(self, event: Any) -> None:
        call = self._ended_call(event, "ok")
        call.tokens_in, call.tokens_out = usage_tokens(event.usage)
        call.cached_tokens = cached_tokens(event.usage)
        call.cost_usd = self.pricer.cost(call.model or "", call.tokens_in, call.tokens_out, call.cached_tokens)
        call.unpriced = call.tokens_in + call.tokens_out > 0 and self.pricer.per_token(call.model or "") is None
        self._unguarded(call)
        call.finish_reason, call.response_id = event.finish_reason, event.response_id
        self._count(call)
        self.state.activity = f"{call.step.agent} thinking"
        self._tell("call_ended", call)
        took = f" in {call.latency_ms:.0f}ms" if call.latency_ms is not None else ""
        cost = "unpriced" if call.unpriced else f"${call.cost_usd:.4f}"
        message = f"{call.step.agent} <- {call.model}: {call.tokens_in}+{call.tokens_out} tokens, {cost}{took}"
        self.event("llm_call", message, call.step.position, call.step.agent, {"call_id": call.call_id}, ts=call.finished_at)

    def _unguarded(self, call: Call) -> None:
        """A call that did not pass the guarded path (an LLM a library made itself): a defect, but one whose spend is
        still the run's. Counted against the budget here, after the fact, and said once."""
        from mamabear.llm.resilience import CALLER

        if CALLER.get() is not None or self.guard is None:
            return
        self.guard.add(call.cost_usd, call.tokens_in + call.tokens_out)
        if not self.unguarded_calls:
            said = f"warning: a model call to {call.model} did not go through mamabear's guarded path (counted, not limited)"
            self.event("llm_unguarded", said, call.step.position)
        self.unguarded_calls += 1

    def _llm_failed(self, event: Any) -> None:
        if event.call_id in self._failed_calls:
            return
        self._failed_calls.add(event.call_id)
        call = self._ended_call(event, "error")
        call.error = self.redact(str(event.error))
        self._count(call)
        self._tell("call_ended", call)
        message = f"{call.step.agent} <- {call.model} failed: {call.error}"
        self.event("llm_error", message, call.step.position, call.step.agent, {"call_id": call.call_id}, ts=call.finished_at)

    def cache_hit(self, hit: Any) -> None:
        """A call the response cache answered (no CrewAI event exists for it): recorded like a call, at no cost."""
        with self._lock:
            task_id = str(hit.task.id) if hit.task is not None else None
            position = self.built.positions.get(task_id, self.current) if self.built and task_id else self.current
            agent_id = str(hit.agent.id) if hit.agent is not None else None
            planned = self._planned(agent_id)
            agent = planned.id if planned else self._caller(getattr(hit.agent, "role", None), hit.answered_by)[0]
            finished = time.time()
            call = Call(
                f"cache-{uuid.uuid4().hex}",
                Step(position, agent, agent_id),
                hit.answered_by,
                hit.model,
                finished - hit.seconds,
                finished,
                "ok",
                cache_hit=True,
                saved_usd=hit.saved_usd,
            )
            self._count(call)
            self.state.cache_hits += 1
            self.state.saved_usd += hit.saved_usd
            self._tell("call_ended", call)
            message = f"{agent} <- {hit.source} ({hit.answered_by}): saved ${hit.saved_usd:.4f}"
            self.event("llm_cache_hit", message, position, agent, {"call_id": call.call_id}, ts=finished)

    # ------------------------------------------------------------ tool calls

    def _tool_key(self, event: Any) -> str:
        return f"{getattr(event, 'agent_id', '')}:{event.tool_name}"

    def _tool_started_event(self, event: Any) -> None:
        step = self._step(event)
        started = self._tool_started[self._tool_key(event)] = self._ts(event)
        self._tell("tool_started", ToolUse(event.event_id, event.tool_name, step, started))
        self.changed(f"{step.agent} running tool {event.tool_name}")

    def _record_tool(self, event: Any, ok: bool, output: Any, error: str | None) -> None:
        started = getattr(event, "started_at", None)
        started_ts = started.timestamp() if started else self._tool_started.pop(self._tool_key(event), None)
        finished = getattr(event, "finished_at", None)
        arguments = event.tool_args if isinstance(event.tool_args, str) else json.dumps(event.tool_args, default=str, ensure_ascii=False)
        tool = ToolUse(
            event.started_event_id or event.event_id,
            event.tool_name,
            self._step(event),
            started_ts,
            finished.timestamp() if finished else self._ts(event),
            arguments=self.redact(arguments),
            output=self.redact(None if output is None else str(output)[:OUTPUT_CAP]),
            ok=ok,
            error=self.redact(error),
        )
        self.state.activity = f"{tool.step.agent} thinking"
        self._tell("tool_ended", tool)
        verdict = "ok" if ok else f"failed: {error}"
        self.event("tool_call", f"{tool.step.agent} ran tool {event.tool_name}: {verdict}", tool.step.position, tool.step.agent)

    def _tool_finished(self, event: Any) -> None:
        failure = getattr(event, "failure", None)
        self._record_tool(event, failure is None, event.output, None if failure is None else str(failure))

    def _tool_error(self, event: Any) -> None:
        self._record_tool(event, False, None, str(event.error))
