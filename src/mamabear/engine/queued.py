"""A run sent to the worker pool (``--queue``): recorded queued, with the options a worker starts it with."""

from __future__ import annotations

import time

from mamabear.config.limits import Limits
from mamabear.config.redact import Redactor
from mamabear.engine.attempt import new_run_id, record_run, run_options
from mamabear.engine.plan import Plan
from mamabear.engine.services import Services
from mamabear.errors import UsageError
from mamabear.status import Status


def check_queueable(plan: Plan, limits: Limits) -> None:
    """What a worker cannot do for a run, said before it is queued."""
    if limits.budget_usd is not None and plan.unpriced:
        raise UsageError(f"--budget-usd {limits.budget_usd:g} cannot be held: no price is known for {', '.join(plan.unpriced)}.")
    if plan.asks_person or plan.answers is not None:
        raise UsageError(
            "a task of this crew asks a person for feedback (human_input), which a queued run cannot take yet; run it with --detach --answers FILE."
        )
    if plan.crew.process == "flow":
        raise UsageError(f"{plan.crew.name} is a CrewAI flow, whose project a worker cannot find yet; run it here, or with --detach.")
    if plan.sandbox is not None and plan.sandbox.backend == "local" and plan.sandbox.session:
        raise UsageError(f"the run works in the local sandbox session {plan.sandbox.session}, on this machine; a queued run may start on any worker.")


def queue_run(ws: Services, plan: Plan, limits: Limits, queue: str, extra: dict | None = None) -> str:
    """Record the run as queued on ``queue``; a worker starts it (as ``mamabear resume ID`` would) and the store
    says where it is from then on (``check_queueable`` first)."""
    options = {**run_options(ws, plan, limits), **{k: v for k, v in (extra or {}).items() if v is not None}, "queue": queue}
    return record_run(ws.store, plan, options, Redactor.for_settings(ws.settings), new_run_id(), time.time(), None, None, status=Status.QUEUED)


def queue_resume(ws: Services, plan: Plan, limits: Limits, run_id: str, queue: str) -> None:
    """``resume ID --queue``: the run goes back to the queue with the options its resume was given (model, server,
    limits), for a worker to continue it; only if it is still as ``prepare_resume`` found it (options and status in
    one update)."""
    run = ws.store.run(run_id)
    options = {**(run.options or {}), **run_options(ws, plan, limits), "queue": queue}
    if not ws.store.queue_again(run_id, str(run.status), options):
        raise UsageError(f"run {run_id} changed meanwhile (it is {ws.store.run(run_id).status} now); it is not queued.")
