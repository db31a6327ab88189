"""The run engine's entry points: run (or resume) a plan, prepare a resume, name a run.

A run is one id with one or more attempts: the first ``run`` and every ``resume``
(``engine/attempt.py``); how an attempt ends is ``engine/attempt_end.py``; what a resume
reads back is ``engine/resume.py``.
"""

from __future__ import annotations

from typing import Any

from mamabear.config.limits import Limits
from mamabear.engine.attempt import Attempt, new_run_id
from mamabear.engine.attempt_end import RunResult, ending_line
from mamabear.engine.plan import Plan
from mamabear.engine.resume import prepare_resume
from mamabear.engine.services import Services
from mamabear.engine.tracker import Observer

__all__ = ["RunResult", "ending_line", "execute", "new_run_id", "prepare_resume"]


def execute(
    ws: Services,
    plan: Plan,
    observers: list[Observer],
    limits: Limits | None = None,
    run_id: str | None = None,
    resume: bool = False,
    on_abandon: Any = None,
    started_at: float | None = None,
) -> RunResult:
    """Run (or resume) the plan; ``on_abandon(result)`` renders the result if a stop must exit the process early.

    ``started_at``: when the command started; the attempt's time (store, trace, views) counts from it.
    """
    return Attempt(ws, plan, observers, limits, run_id, resume, on_abandon, started_at).run()
