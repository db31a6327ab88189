"""mamabear mission GOAL"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, is_tty
from mamabear.cli.run import (
    BASE_URL,
    BUDGET_TOKENS,
    BUDGET_USD,
    DETACH,
    MAX_DURATION,
    MODEL,
    NO_CACHE,
    NO_MEMORY,
    QUEUE,
    QUIET,
    RECORD,
    REPLAY,
    RUN_ID,
    check_tape,
    in_background,
    launch,
    limits_from,
    progress_view,
)


def mission(
    ctx: typer.Context,
    goal: str = typer.Argument(..., metavar="GOAL", help='What to achieve, e.g. "a CLI that converts CSV to JSON, with tests".'),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="At most this many model-driven steps (default: config/missions.yaml)."),
    model: Optional[str] = MODEL,
    base_url: Optional[str] = BASE_URL,
    budget_usd: Optional[float] = BUDGET_USD,
    budget_tokens: Optional[int] = BUDGET_TOKENS,
    max_duration: Optional[str] = MAX_DURATION,
    no_memory: bool = NO_MEMORY,
    no_cache: bool = NO_CACHE,
    detach: bool = DETACH,
    queue: Optional[str] = QUEUE,
    record: Optional[str] = RECORD,
    replay: Optional[str] = REPLAY,
    review_plan: bool = typer.Option(False, "--review-plan", help="Show each plan version and ask: go, edit ($EDITOR on its YAML) or abort (at a terminal)."),
    review_first: bool = typer.Option(False, "--review-first-plan", help="As --review-plan, for the first plan only: re-plans go on unreviewed."),
    quiet: bool = QUIET,
    json_out: bool = JSON,
    run_id: Optional[str] = RUN_ID,
) -> None:
    """Carry out an open goal: the scout commander plans it, the specialists do each item, checks decide when it is done."""
    from mamabear.config.limits import Limits
    from mamabear.engine.services import Services
    from mamabear.errors import UsageError
    from mamabear.mission.start import for_mission

    review_plan = review_plan or review_first
    if review_plan and (detach or queue is not None or not (is_tty(sys.stdin) and is_tty(sys.stderr))):
        where = "with --detach" if detach else "with --queue" if queue is not None else "here: stdin and stderr are not a terminal"
        raise UsageError(f"--review-plan asks at a terminal and cannot {where}; run without it, or at a terminal")
    limits = Limits(**limits_from(budget_usd, budget_tokens, max_duration))
    check_tape(record, replay, queue)
    ws = Services(model=model, base_url=base_url, no_memory=no_memory or None, no_cache=no_cache or None, record=record, replay=replay)
    start = for_mission(ws, goal, max_steps)
    plan = start.plan
    if queue is not None:
        from mamabear.cli.run import BOTH_BACKGROUNDS, to_workers

        if detach:
            raise UsageError(BOTH_BACKGROUNDS)
        to_workers(ws, plan, limits, queue, json_out, extra={"max_steps": max_steps})
        return
    if detach:
        from mamabear.cli.options import background_args

        in_background(ws, background_args(ctx), {}, quiet, json_out, last=(goal,))  # after --: a goal may start with a dash
        return
    progress = progress_view(quiet)
    review = None
    if review_plan:
        from mamabear.cli.mission_view import TerminalReview

        review = TerminalReview(console(stderr=True))
        review.pause = getattr(progress, "paused", None)
    launch(ws, plan, limits, quiet, json_out, run_id=run_id, work=start.work(review, review_first), progress=progress)
