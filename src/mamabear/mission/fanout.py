"""A mission's independent items at once, on a worker pool: one step here, the others sent to the pool.

The attempt that holds the mission adds each item's step row, sends the others' positions to the pool (``Pool.send``)
and carries out the first itself. A worker that takes a sent step claims its row (``Store.claim_step``: one claim
wins) and runs it as an attempt of its own (`mamabear step RUN POSITION`), beating on the row. The holder then waits
for each: a step no worker has taken yet it claims and runs itself; a finished one it checks and judges
(``Mission.fold``) in the order the steps end; a step whose worker stopped beating for the stale time, or that was
stopped on its worker (a worker shut down), is settled interrupted and run here again; a step that failed fails the
run, as it would have here. A step's result counts only once its holder has folded it into the course.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mamabear.engine.context import RunContext
from mamabear.errors import MamabearError
from mamabear.mission.course import RunItem
from mamabear.status import Status

POLL_S = 0.5


@dataclass(frozen=True)
class Pool:
    """Where the steps go: ``send(run_id, position, attempt)`` queues one for the workers; ``worker`` names this
    attempt's."""

    send: Callable[[str, int, int], None]
    worker: str


@dataclass(frozen=True)
class Sent:
    """An item's step, its row added: what any worker needs to carry it out."""

    action: RunItem
    position: int
    description: str
    expected: str


class Holder(Protocol):
    """What the mission's holding attempt does with its steps (mission.runner.Mission)."""

    ctx: RunContext

    def note(self, kind: str, message: str, data: dict | None = None, position: int | None = None) -> None: ...

    def add_item_step(self, action: RunItem, sent: bool = False) -> Sent: ...

    def fold_here(self, sent: Sent) -> None: ...

    def fold(self, action: RunItem, answer: str, position: int, looped: str | None) -> None: ...

    def loop_in_store(self, position: int) -> str | None: ...


def carry_out(mission: Holder, pool: Pool, steps: list[Sent]) -> None:
    """Every step of ``steps`` carried out, here or on other workers, and folded into the mission's course."""
    from mamabear.store.liveness import stale_after_s

    ctx = mission.ctx
    store, run_id = ctx.store, ctx.run_id
    first, *rest = steps
    store.claim_step(run_id, first.position, pool.worker)  # its own, before the others go out
    for sent in rest:
        pool.send(run_id, sent.position, ctx.attempt)
    mission.fold_here(first)
    waiting = list(rest)
    while waiting:
        _checked(ctx)
        rows = {row.position: row for row in store.tasks(run_id)}  # one read a pass, for every step waited on
        for sent in list(waiting):
            row = rows.get(sent.position)
            if row is None:
                continue
            if row.status == Status.PENDING:
                if store.claim_step(run_id, sent.position, pool.worker):  # no worker has taken it: it is done here
                    waiting.remove(sent)
                    mission.fold_here(sent)
                break  # time has passed: look at the others afresh
            if row.status == Status.RUNNING:
                if row.heartbeat_at is not None and time.time() - row.heartbeat_at > stale_after_s():
                    why = f"worker {row.worker} stopped beating ({time.time() - row.heartbeat_at:.0f}s ago)"
                    if store.set_task_status_if(run_id, sent.position, Status.RUNNING, Status.INTERRUPTED, f"cut short: {why}"):
                        waiting.remove(sent)
                        _again(mission, pool, store.task(run_id, sent.position), sent, why)
                        break
                continue
            ctx.tracker.ended_elsewhere(row)
            waiting.remove(sent)
            if row.status == Status.COMPLETED:
                mission.fold(sent.action, row.output or "", sent.position, mission.loop_in_store(sent.position))
                continue
            _checked(ctx)  # a stop of the run (a cancel, the budget) is the run's, not the step's: not done again
            if row.status == Status.FAILED:
                raise MamabearError(f"step {row.position} {row.task} failed on worker {row.worker}: {row.error}")
            _again(mission, pool, row, sent, f"it was {row.status} on worker {row.worker}")
            break
        if waiting:
            ctx.guard.sleep(POLL_S)


def _checked(ctx: RunContext) -> None:
    """The run's guard, with what every step of the run has spent (on any worker), checked."""
    ctx.guard.spent_is(*ctx.store.spent(ctx.run_id))
    ctx.guard.check()


def _again(mission: Holder, pool: Pool, row: Any, sent: Sent, why: str) -> None:
    """A step cut short elsewhere is carried out here, as a new step of the same try."""
    mission.ctx.tracker.ended_elsewhere(row)
    mission.note("mission_step_again", f"step {sent.position} ({row.task}) is done again here: {why}", {"item": sent.action.item.id}, sent.position)
    again = mission.add_item_step(sent.action)
    mission.ctx.store.claim_step(mission.ctx.run_id, again.position, pool.worker)
    mission.fold_here(again)
