"""The statuses of runs, attempts and tasks: one enum, so every view knows every status."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    PENDING = "pending"  # a task not started yet
    QUEUED = "queued"  # a run waiting for a worker (`--queue`)
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, or a process that died
    TIME_LIMIT = "time_limit"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CANCELLED = "cancelled"
    STUCK = "stuck"  # a mission that repeated itself after a re-plan

    # The value, wherever a status is printed or stored (Python 3.12 made format() of a str mixin give "Status.X").
    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]  # str's, on purpose: the value, not Status.X


FINAL = tuple(s for s in Status if s not in (Status.PENDING, Status.QUEUED, Status.RUNNING))  # a run or attempt that has ended
RESUMABLE = tuple(s for s in FINAL if s != Status.COMPLETED)
STOPPED = (Status.INTERRUPTED, Status.TIME_LIMIT, Status.BUDGET_EXHAUSTED, Status.CANCELLED)  # ended by a stop, not by its work
