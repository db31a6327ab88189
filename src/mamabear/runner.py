"""The run engine: record the run, build the crew, kick it off, follow it, settle its status."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mamabear.cost import Pricer
from mamabear.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from mamabear.plan import Plan
from mamabear.redact import Redactor
from mamabear.tracker import Observer, RunState, TaskState, Tracker
from mamabear.workspace import Workspace


@dataclass
class RunResult:
    run_id: str
    status: str
    output: str | None
    error: str | None
    state: RunState
    exit_code: int


def new_run_id() -> str:
    """Sortable by start time and readable: 261123-213455-a3f9."""
    return f"{datetime.now():%y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """One sentence for what went wrong, and whether it is the user's setup (2) or the run (1)."""
    chain = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    names = {type(e).__name__ for e in chain}
    message = next((str(e) for e in chain if str(e)), type(exc).__name__).strip().splitlines()[0]
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "ConnectTimeout"}:
        return f"cannot reach the model provider ({message}); check --base-url or your network.", EXIT_USAGE
    if names & {"AuthenticationError", "PermissionDeniedError"}:
        return f"the model provider refused the API key ({message}); check the key's environment variable.", EXIT_USAGE
    if "NotFoundError" in names:
        return f"the model provider does not know the model ({message}); check --model or config/models.yaml.", EXIT_USAGE
    return message, EXIT_FAILED


def execute(ws: Workspace, plan: Plan, observers: list[Observer], run_id: str | None = None) -> RunResult:
    from mamabear.build import build

    store = ws.store
    run_id = run_id or new_run_id()
    state = RunState(run_id=run_id, crew=plan.crew.name, tasks=[
        TaskState(position=t.position, task=t.id, agent=t.agent, model=t.route.model if t.route else None)
        for t in plan.tasks
    ])
    store.create_run(
        run_id, plan.crew.name, plan.crew.process, plan.inputs, plan.to_dict(),
        [{"position": t.position, "task": t.task, "agent": t.agent, "model": t.model} for t in state.tasks],
        pid=os.getpid(),
    )
    tracker = Tracker(state, store, Pricer(ws.models.prices), Redactor(ws.settings.env), observers)
    tracker.event("run_started", f"run {run_id} of crew {plan.crew.name} started ({len(plan.tasks)} tasks, {plan.crew.process})")

    output: str | None = None
    error: str | None = None
    exit_code = EXIT_OK
    try:
        built = build(plan, ws.catalog, ws.settings)
        tracker.attach(built)
        result: Any = built.crew.kickoff(inputs=plan.inputs)
        tracker.detach()
        for position, task_output in enumerate(result.tasks_output, start=1):
            tracker.complete_task(position, task_output.raw)
        output, status = tracker.redact(result.raw), "completed"
    except KeyboardInterrupt:
        status, error, exit_code = "interrupted", "interrupted by the user", EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported as one sentence
        error, exit_code = describe_failure(exc)
        error = tracker.redact(error)
        failed = state.task(tracker.current)
        if failed is not None and failed.status != "completed":
            error = f"task {failed.position} {failed.task} failed: {error}"
            failed.status, failed.finished_at = "failed", failed.finished_at or time.time()
            store.update_task(run_id, failed.position, status="failed", error=error, finished_at=failed.finished_at)
        status = "failed"
    finally:
        tracker.detach()
    state.status, state.activity, state.finished_at = status, status, time.time()
    store.update_run(run_id, status=status, output=output, error=error, finished_at=time.time())
    tracker.event("run_finished", f"run {run_id} {status}" + (f": {error}" if error else ""), data={"status": status})
    return RunResult(run_id, status, output, error, state, exit_code)
