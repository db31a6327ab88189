"""Rows read back from the store as typed records, where they leave the store's package: a run and its tasks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mamabear.status import Status


def _values(cls: type, row: Mapping[str, Any]) -> dict[str, Any]:
    """A record from a row: its status an enum member; no calls (an outer join's NULL sums) means zero."""
    values = {f.name: row[f.name] for f in fields(cls) if f.name in row}
    for key in ("tokens_in", "tokens_out", "llm_calls", "unpriced_calls"):
        values[key] = int(values.get(key) or 0)
    values["cost_usd"] = float(values.get("cost_usd") or 0.0)
    return {**values, "status": Status(row["status"])}


@dataclass(frozen=True)
class RunRow:
    id: str
    crew: str
    status: Status
    created_at: float
    process: str | None = None
    inputs: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    output: str | None = None
    error: str | None = None
    pid: int | None = None
    finished_at: float | None = None
    options: dict[str, Any] | None = None  # the flags a resume reuses (never a key)
    host: str | None = None
    attempt: int | None = None  # the attempt running now or last
    cancel_requested: bool | None = None
    session_id: str | None = None
    heartbeat_at: float | None = None  # when its running process last said it is alive
    worker: str | None = None  # the worker that runs it now or ran it last (`mamabear worker`)
    parent_id: str | None = None  # the run it was forked from
    forked_from: str | None = None  # the parent's task it started from
    # The run's usage, over all its attempts (sandbox hours included in its cost); ``seconds`` in a listing only.
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    unpriced_calls: int = 0  # calls of a model with no known price: not in cost_usd
    seconds: float | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> RunRow:
        return cls(**_values(cls, row))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskRow:
    run_id: str
    position: int
    task: str
    status: Status
    agent: str | None = None
    model: str | None = None
    output: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    unpriced_calls: int = 0
    worker: str | None = None  # the worker that ran it, when not its run's own (a mission's step sent out)
    heartbeat_at: float | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> TaskRow:
        return cls(**_values(cls, row))
