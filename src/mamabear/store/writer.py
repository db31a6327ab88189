"""The run store as an observer of a run: each task, model call, tool call and log line becomes its row."""

from __future__ import annotations

from typing import Any

from mamabear.observe import Call, Event, RunObserver, RunState, TaskState, ToolUse
from mamabear.status import Status
from mamabear.store.database import Store


class StoreWriter(RunObserver):
    """Writes what a run does as it happens; a write that fails raises StorageError (the run stops on it)."""

    def __init__(self, store: Store, run_id: str, attempt: int) -> None:
        self.store, self.run_id, self.attempt = store, run_id, attempt

    def event(self, state: RunState, event: Event) -> None:
        self.store.add_event(self.run_id, event.kind, event.message, event.position, event.agent, event.data, event.ts, self.attempt, replace=event.replaces)

    def task_started(self, state: RunState, task: TaskState, event_id: str | None) -> None:
        self.store.update_task(self.run_id, task.position, status=Status.RUNNING, started_at=task.started_at)

    def task_ended(self, state: RunState, task: TaskState) -> None:
        if task.status == Status.COMPLETED:
            values = {"output": task.output, "started_at": task.started_at}
        else:
            values = {"error": task.error}
        self.store.update_task(self.run_id, task.position, status=task.status, finished_at=task.finished_at, **values)

    def call_started(self, call: Call) -> None:
        self.store.save_llm_call(
            call.call_id,
            self.run_id,
            task_position=call.step.position,
            agent=call.step.agent,
            model=call.model,
            started_at=call.started_at,
            attempt=self.attempt,
        )

    def call_ended(self, call: Call) -> None:
        values: dict[str, Any] = {
            "task_position": call.step.position,
            "agent": call.step.agent,
            "model": call.model,
            "outcome": call.outcome,
            "latency_ms": call.latency_ms,
            "finished_at": call.finished_at,
            "attempt": self.attempt,
        }
        if call.outcome == "ok":
            values |= {
                "tokens_in": call.tokens_in,
                "tokens_out": call.tokens_out,
                "cost_usd": call.cost_usd,
                "finish_reason": call.finish_reason,
                "cached_tokens": call.cached_tokens or None,
                "unpriced": call.unpriced or None,
            }
        else:
            values["error"] = call.error
        if call.cache_hit:
            values |= {"started_at": call.started_at, "cache_hit": True, "saved_usd": call.saved_usd}
        self.store.save_llm_call(call.call_id, self.run_id, **values)

    def tool_ended(self, tool: ToolUse) -> None:
        self.store.add_tool_call(
            self.run_id,
            task_position=tool.step.position,
            agent=tool.step.agent,
            tool=tool.tool,
            arguments=tool.arguments,
            output=tool.output,
            ok=tool.ok,
            error=tool.error,
            started_at=tool.started_at,
            duration_ms=tool.duration_ms,
            attempt=self.attempt,
        )
