"""`runs fork RUN --from TASK`: a new run of the same crew that starts at TASK, the tasks before it done already.

The fork's earlier tasks are completed with the parent's stored outputs; its attempt builds the crew afresh and gives
CrewAI those outputs (``with_stored_outputs``), so it starts at TASK and asks no model for what came before, on this
machine or on a worker. Inputs (``-i``) and the model may differ from the parent's. The parent's checkpoints are not
used: a completed run keeps none (CrewAI's own ``Crew.fork`` restores one), and the store's outputs serve the same
purpose on any machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mamabear.config.limits import Limits
from mamabear.engine.plan import Plan, make_plan
from mamabear.engine.services import Services
from mamabear.errors import UsageError
from mamabear.status import Status


@dataclass(frozen=True)
class Fork:
    parent: Any  # the parent's run row
    start: Any  # the parent's task row the fork starts at
    kept: list[Any]  # the parent's task rows before it, completed: their outputs are the fork's


def prepare_fork(run_id: str, from_task: str, inputs: dict[str, str], model: str | None, base_url: str | None) -> tuple[Services, Plan, Limits, Fork]:
    """The fork's workspace and plan, its limits, and where in its parent it starts."""
    from mamabear.config.redact import dereferenced

    base = Services()
    store = base.store
    parent = store.run(store.resolve_run_id(run_id))
    if parent.process == "mission":
        raise UsageError(f"run {parent.id} is a mission; a mission cannot be forked yet (resume it, or start a new mission).")
    rows = store.tasks(parent.id)
    start = next((r for r in rows if from_task in (r.task, str(r.position))), None)
    if start is None:
        raise UsageError(f"run {parent.id} has no task '{from_task}'; its tasks: {', '.join(r.task for r in rows)}.")
    unfinished = [r.task for r in rows[: start.position - 1] if r.status != Status.COMPLETED]
    if unfinished:
        first = unfinished[0]
        raise UsageError(f"task {first} of run {parent.id} did not complete, so a fork from {start.task} has no output of it to keep; fork from {first}.")
    options = parent.options or {}
    ws = base.rerouted(
        model=model or options.get("model"),
        base_url=base_url or options.get("base_url"),
        sandbox=options.get("sandbox"),
        no_memory=options.get("no_memory"),
        no_cache=options.get("no_cache"),
    )
    kept = {k: dereferenced(v, ws.settings.env, f"input {k} of run {parent.id}") if isinstance(v, str) else v for k, v in (parent.inputs or {}).items()}
    plan = make_plan(ws.catalog, ws.models, parent.crew, {**kept, **inputs}, ws.settings, sandbox=ws.sandbox)
    if [t.id for t in plan.tasks] != [r.task for r in rows]:
        raise UsageError(f"crew '{parent.crew}' has changed since run {parent.id} (its tasks differ); a fork keeps the parent's tasks.")
    return ws, plan, Limits.from_dict(options), Fork(parent, start, rows[: start.position - 1])


def record_fork(ws: Services, plan: Plan, limits: Limits, fork: Fork, queue: str | None = None) -> str:
    """The fork's run, waiting to start (interrupted here, queued for a worker), its earlier tasks done."""
    from mamabear.config.redact import Redactor
    from mamabear.engine.attempt import new_run_id, record_run, run_options
    from mamabear.engine.queued import check_queueable

    options = run_options(ws, plan, limits)
    if queue is not None:
        check_queueable(plan, limits)
        options["queue"] = queue
    status = Status.QUEUED if queue is not None else Status.INTERRUPTED
    fork_id = record_run(ws.store, plan, options, Redactor.for_settings(ws.settings), new_run_id(), time.time(), None, None, status=status)
    parent, start = fork.parent, fork.start
    ws.store.update_run(fork_id, parent_id=parent.id, forked_from=start.task, error=None if queue else f"forked from {parent.id} at {start.task}")
    ws.store.keep_outputs(fork_id, fork.kept)
    return fork_id
