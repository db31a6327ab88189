"""What a run tells those who follow it: its live state, a typed record of each step, and ``RunObserver``.

The engine's tracker turns CrewAI's events into these records (redacted, attributed to a
task and a specialist) and hands each to every observer of the run: the store writer
(``store.writer``), the tracer (``telemetry.spans``) and a progress view (``cli.progress``).
An observer overrides the methods it cares about; the rest do nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mamabear.status import Status


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
    unpriced_calls: int = 0  # answered calls of a model with no known price: their cost is not in cost_usd
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
    process: str = "sequential"

    def runs_on(self, task: TaskState) -> str:
        """Who a row runs on, for people: its agent; a flow method's row has none, and a row of a hierarchical crew the
        manager gives out."""
        return task.agent or ("flow method" if self.process == "flow" and "/" not in task.task else "manager")

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

    @property
    def unpriced_calls(self) -> int:
        return sum(t.unpriced_calls for t in self.tasks)


@dataclass(frozen=True)
class Step:
    """Where something happened: the task, the specialist, and CrewAI's ids that place it in the step tree."""

    position: int | None
    agent: str | None  # the specialist's id (or, for a call of no agent of ours, the role it was made for)
    agent_id: str | None = None  # CrewAI's id of the agent: its step on a task is one span
    event_id: str | None = None  # CrewAI's id of the start event
    parent_event_id: str | None = None  # the enclosing step, when CrewAI knew it


@dataclass
class Call:
    """One model call, as it starts and as it ends (``outcome`` "ok" or "error")."""

    call_id: str
    step: Step
    model: str | None  # the configured id it went to (provider/model)
    requested: str  # the configured id the agent's route asked for (the call may have gone to a fallback)
    started_at: float | None
    finished_at: float | None = None
    outcome: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    response_id: str | None = None
    error: str | None = None
    cache_hit: bool = False
    saved_usd: float = 0.0
    unpriced: bool = False  # answered, with tokens, by a model that has no known price

    @property
    def latency_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at) * 1000


@dataclass
class ToolUse:
    """One tool call; ``key`` is CrewAI's id of its start event."""

    key: str
    tool: str
    step: Step
    started_at: float | None
    finished_at: float | None = None
    arguments: str | None = None
    output: str | None = None
    ok: bool = True
    error: str | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at) * 1000


@dataclass
class MemoryQuery:
    """One recall from the shared memory (the store has the memory's own events; this is its span)."""

    key: str
    step: Step
    started_at: float | None
    limit: int | None = None
    finished_at: float | None = None
    results: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Event:
    """A line of the run's log: stored, shown, one line each."""

    kind: str
    message: str
    position: int | None = None
    agent: str | None = None
    data: dict[str, Any] | None = None
    ts: float | None = None
    replaces: bool = False  # a saved state: it supersedes the run's earlier event of its kind (the store keeps the latest)


class RunObserver:
    """Follows one run attempt. Each method gets what happened, already redacted; none may block for long."""

    def changed(self, state: RunState) -> None:
        """What the run is doing now (``state.activity``) changed."""

    def event(self, state: RunState, event: Event) -> None:
        """A line of the run's log."""

    def task_started(self, state: RunState, task: TaskState, event_id: str | None) -> None:
        """A task began."""

    def task_ended(self, state: RunState, task: TaskState) -> None:
        """A task completed, failed, or was cut short by a stop (``task.status`` says which)."""

    def agent_started(self, step: Step, ts: float) -> None:
        """A specialist began its step on a task."""

    def agent_ended(self, step: Step, ts: float, error: str | None) -> None:
        """A specialist's step on a task ended."""

    def call_started(self, call: Call) -> None:
        """A model call went out."""

    def call_ended(self, call: Call) -> None:
        """A model call was answered, failed, or was answered from the response cache."""

    def tool_started(self, tool: ToolUse) -> None:
        """A tool began."""

    def tool_ended(self, tool: ToolUse) -> None:
        """A tool returned or failed."""

    def memory_started(self, query: MemoryQuery) -> None:
        """A memory recall began."""

    def memory_ended(self, query: MemoryQuery) -> None:
        """A memory recall returned or failed."""
