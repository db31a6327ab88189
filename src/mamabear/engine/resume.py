"""Resuming a run: check it can be resumed, re-plan it with its stored options, and give the crew what the store has done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamabear.config.limits import Limits
from mamabear.engine.plan import Plan, make_plan
from mamabear.engine.services import Services
from mamabear.errors import UsageError
from mamabear.status import RESUMABLE, Status
from mamabear.store.liveness import heartbeat_age, running_here, settle_orphans, stale_after_s
from mamabear.store.rows import TaskRow


def prepare_resume(
    run_id: str,
    model: str | None = None,
    base_url: str | None = None,
    crew_for: Any = None,
    answers: Any = None,
    **limit_flags: float | int | None,
) -> tuple[Services, Plan, Limits, str]:
    """Check the run can be resumed and re-plan it with its stored options, overridden by the flags given.

    ``crew_for(run)``: the crew of a run whose crew is made in code (a mission's team; its tasks are decided as it goes),
    or None for a crew of the catalog."""
    base = Services()
    store = base.store
    run_id = store.resolve_run_id(run_id)
    run = settle_orphans(store, [store.run(run_id)])[0]
    if running_here(run):
        raise UsageError(f"run {run_id} is still running (pid {run.pid}); stop it with `mamabear runs cancel {run_id}` first.")
    if run.status == Status.RUNNING:
        age = heartbeat_age(run)
        beat = f"its last heartbeat was {age:.0f}s ago" if age is not None else "it has no heartbeat"
        raise UsageError(
            f"run {run_id} is running on {run.host or 'another machine'} ({beat}); resume it where it runs, "
            f"or here once its heartbeat is {stale_after_s():.0f}s old (the machine is then taken as lost)."
        )
    if run.status not in (*RESUMABLE, Status.QUEUED):  # a queued run is started by a worker the same way
        raise UsageError(f"run {run_id} is {run.status}; only a {', '.join(RESUMABLE)} run can be resumed.")
    ws, plan = _replanned(base, run, model, base_url, crew_for, answers)
    return ws, plan, Limits.from_dict(run.options or {}).overridden(**limit_flags), run_id


def prepare_step(run_id: str, attempt: int, crew_for: Any) -> tuple[Services, Plan, Limits]:
    """The run a step sent to the pool belongs to, planned as its holding attempt planned it (its session, model and
    limits); only while attempt ``attempt``, which sent it, holds it."""
    base = Services()
    run = base.store.run(run_id)
    if run.status != Status.RUNNING or run.attempt != attempt:
        raise UsageError(f"run {run_id} is {run.status} (attempt {run.attempt}): the step attempt {attempt} sent is not carried out now.")
    ws, plan = _replanned(base, run, None, None, crew_for, None)
    return ws, plan, Limits.from_dict(run.options or {})


def _replanned(base: Services, run: Any, model: str | None, base_url: str | None, crew_for: Any, answers: Any) -> tuple[Services, Plan]:
    """The run planned again with its stored options, overridden by the flags given."""
    run_id, store = run.id, base.store
    options = run.options or {}
    # The run keeps its sandbox backend; a run that had a session reattaches to it.
    ws = base.rerouted(
        model=model or options.get("model"),
        base_url=base_url or options.get("base_url"),
        sandbox=options.get("sandbox"),
        session=run.session_id or options.get("session"),
        no_memory=options.get("no_memory"),
        no_cache=options.get("no_cache"),
    )
    from mamabear.config.redact import dereferenced

    inputs = {k: dereferenced(v, ws.settings.env, f"input {k} of run {run_id}") if isinstance(v, str) else v for k, v in (run.inputs or {}).items()}
    made = crew_for(run) if crew_for is not None else None
    plan = make_plan(ws.catalog, ws.models, made or run.crew, inputs, ws.settings, sandbox=ws.sandbox, answers=answers)
    if made is None and [t.id for t in plan.tasks] != [t.task for t in store.tasks(run_id)]:
        raise UsageError(f"crew '{run.crew}' has changed since run {run_id} started (its tasks differ); restore its YAML to resume.")
    return ws, plan


def with_stored_outputs(crew: Any, rows: list[TaskRow], env: Mapping[str, str] | None = None) -> Any:
    """The resumed crew with every task the store records as completed given its stored output.

    A task is recorded completed a moment before CrewAI's checkpoint of it is on disk; a kill in
    between left the checkpoint one task behind, and the resume ran that task again. With no
    readable checkpoint at all, the crew is built afresh and every completed task is filled in.
    CrewAI starts a resumed crew (one with a kickoff id) at its first task without an output, and
    gives the earlier outputs as context.
    """
    from crewai.tasks.task_output import TaskOutput

    from mamabear.config.redact import dereferenced

    done = {
        row.position: dereferenced(row.output, env or {}, f"the output of task {row.position} ({row.task})")  # its secrets put back
        for row in rows
        if row.status == Status.COMPLETED and row.output is not None
    }
    filled = False
    for position, task in enumerate(crew.tasks, start=1):
        if task.output is not None:
            continue
        if position not in done:
            break
        task.output = TaskOutput(
            description=task.description,
            raw=done[position],
            name=task.name,
            expected_output=task.expected_output,
            agent=task.agent.role if task.agent is not None else "",
        )
        filled = True
    if filled:  # a crew built afresh: make CrewAI skip what is done
        from mamabear.compat.crewai import resume_from_first_unfinished

        resume_from_first_unfinished(crew)
    return crew
