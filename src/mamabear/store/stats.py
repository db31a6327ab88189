"""Fleet KPIs read back from the run store: what `mamabear stats` prints.

Everything is computed over the runs *created* within the window (and of one crew, if given):
their attempts, tasks, LLM calls and sandbox hours count even when they happened later.
Sums and counts are SQL aggregates; only per-run figures and one column of latencies come back to Python.

Percentiles (``p50``, ``p95``) are **nearest-rank**: the value at 1-based rank ``ceil(p/100 * n)`` of the sorted
values, so every percentile is a value that was actually observed (for an even count, p50 is the lower middle one).
"""

from __future__ import annotations

import math
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mamabear.status import FINAL, Status
from mamabear.store.database import Store, attempts, llm_calls, runs, sandbox_usage, tasks

RATE_DIGITS = 4  # 0.1234 = 12.34 %
USD_DIGITS = 6
SECONDS_DIGITS = 3
MS_DIGITS = 1


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for no values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, RATE_DIGITS) if whole else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fleet_stats(store: Store, since_s: float | None, crew: str | None = None, now: float | None = None) -> dict[str, Any]:
    """Operational KPIs over the runs created in the last ``since_s`` seconds (None: all of them).

    - runs: total, by_status, finished (status in FINAL), running, completed, autonomous.
    - success_rate: completed / finished.
    - autonomous_rate: autonomous / finished, where autonomous means the run has exactly one attempt, of kind
      "run", and it completed (a resumed or cancelled run is not autonomous; a run from before attempts were
      recorded has none, so it is not counted as autonomous either).
    - mttr_s: mean over every attempt that ended (finished_at set) with a status other than completed and was
      followed by a later attempt of the same run that completed, of the time from that attempt's finished_at to
      the first later completing attempt's finished_at. recoveries counts those attempts; unrecovered counts
      finished runs whose status is not completed.
    - time_to_first_result_s: per run, the first completed task's finished_at minus the run's created_at; mean, p50.
    - cost: LLM calls plus sandbox hours of the runs; cost_per_completed_run_usd is the mean over completed runs
      of each run's own total.
    - llm: calls (every recorded call), errors (outcome "error"), error_rate = errors / calls, latency_ms p50/p95
      over calls with outcome "ok" that were not cache hits and have a latency, cache_hits, saved_usd, tokens.

    Rates are floats in 0..1 (4 decimals) or None when there is nothing to divide by; dollars have 6 decimals,
    seconds 3, milliseconds 1.
    """
    from mamabear.store.liveness import settle_orphans

    settle_orphans(store, store.list_runs(limit=100_000, status=Status.RUNNING))  # a run whose process died is not running
    now = time.time() if now is None else now
    since = None if since_s is None else now - since_s
    conditions = []
    if since is not None:
        conditions.append(runs.c.created_at >= since)
    if crew is not None:
        conditions.append(runs.c.crew == crew)
    in_window = sa.select(runs.c.id).where(*conditions).scalar_subquery()

    with store.tx() as conn:
        by_status = {
            Status(status): int(n)
            for status, n in conn.execute(sa.select(runs.c.status, sa.func.count()).where(*conditions).group_by(runs.c.status).order_by(runs.c.status))
        }
        autonomous = _autonomous(conn, conditions)
        recovery_times = _recovery_times(conn, in_window)
        first_results = _first_results(conn, conditions)
        llm = conn.execute(
            sa.select(
                sa.func.count(llm_calls.c.id).label("calls"),
                sa.func.coalesce(sa.func.sum(sa.case((llm_calls.c.outcome == "error", 1), else_=0)), 0).label("errors"),
                sa.func.coalesce(sa.func.sum(sa.case((llm_calls.c.cache_hit.is_(True), 1), else_=0)), 0).label("cache_hits"),
                sa.func.coalesce(sa.func.sum(llm_calls.c.saved_usd), 0.0).label("saved_usd"),
                sa.func.coalesce(sa.func.sum(llm_calls.c.tokens_in), 0).label("tokens_in"),
                sa.func.coalesce(sa.func.sum(llm_calls.c.tokens_out), 0).label("tokens_out"),
                sa.func.coalesce(sa.func.sum(llm_calls.c.cost_usd), 0.0).label("cost_usd"),
            ).where(llm_calls.c.run_id.in_(in_window))
        ).one()
        latencies = sorted(
            conn.execute(
                sa.select(llm_calls.c.latency_ms).where(
                    llm_calls.c.run_id.in_(in_window),
                    llm_calls.c.outcome == "ok",
                    llm_calls.c.latency_ms.is_not(None),
                    sa.or_(llm_calls.c.cache_hit.is_(None), llm_calls.c.cache_hit.is_(False)),
                )
            ).scalars()
        )
        sandbox_usd = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(sandbox_usage.c.cost_usd), 0.0)).where(sandbox_usage.c.run_id.in_(in_window))
        ).scalar()
        completed_costs = _completed_run_costs(conn, conditions)

    total = sum(by_status.values())
    finished = sum(n for status, n in by_status.items() if status in FINAL)
    completed = by_status.get(Status.COMPLETED, 0)
    calls, errors = int(llm.calls), int(llm.errors)
    return {
        "window": {"since": since, "now": now, "crew": crew},
        "runs": {
            "total": total,
            "by_status": by_status,
            "finished": finished,
            "running": by_status.get(Status.RUNNING, 0),
            "completed": completed,
            "autonomous": autonomous,
        },
        "success_rate": _rate(completed, finished),
        "autonomous_rate": _rate(autonomous, finished),
        "mttr_s": _round(_mean(recovery_times), SECONDS_DIGITS),
        "recoveries": len(recovery_times),
        "unrecovered": finished - completed,
        "time_to_first_result_s": {
            "runs": len(first_results),
            "mean": _round(_mean(first_results), SECONDS_DIGITS),
            "p50": _round(percentile(sorted(first_results), 50), SECONDS_DIGITS),
        },
        "cost": {
            "total_usd": round(float(llm.cost_usd) + float(sandbox_usd or 0.0), USD_DIGITS),
            "llm_usd": round(float(llm.cost_usd), USD_DIGITS),
            "sandbox_usd": round(float(sandbox_usd or 0.0), USD_DIGITS),
            "cost_per_completed_run_usd": _round(_mean(completed_costs), USD_DIGITS),
        },
        "llm": {
            "calls": calls,
            "errors": errors,
            "error_rate": _rate(errors, calls),
            "latency_ms": {"p50": _round(percentile(latencies, 50), MS_DIGITS), "p95": _round(percentile(latencies, 95), MS_DIGITS), "samples": len(latencies)},
            "cache_hits": int(llm.cache_hits),
            "saved_usd": round(float(llm.saved_usd), USD_DIGITS),
            "tokens_in": int(llm.tokens_in),
            "tokens_out": int(llm.tokens_out),
        },
        "evals": eval_stats(store, 0.0 if since_s is None else now - since_s, crew),
    }


def eval_stats(store: Store, since: float, crew: str | None = None) -> list[dict[str, Any]]:
    """Per eval and day (UTC): runs, pass rate and cost per passing run, oldest day first: how a crew's quality and
    cost move over time. Tuner trials (``NAME [tune]``) are listed apart, under their own name."""
    days: dict[tuple[str, str], list[dict]] = {}
    for row in store.eval_results(since=since):
        if crew is None or row["crew"] == crew:
            day = time.strftime("%Y-%m-%d", time.gmtime(row["created_at"]))
            days.setdefault((row["eval"], day), []).append(row)
    found = []
    for (name, day), rows in sorted(days.items(), key=lambda item: (item[0][0], item[0][1])):
        passed = sum(bool(r["passed"]) for r in rows)
        cost = sum(r["cost_usd"] for r in rows)
        scores = [r["score"] for r in rows if r["score"] is not None]
        found.append(
            {
                "eval": name,
                "day": day,
                "runs": len(rows),
                "pass_rate": _rate(passed, len(rows)),
                "score": _round(_mean(scores), 2),
                "cost_per_pass_usd": _round(cost / passed, USD_DIGITS) if passed else None,
            }
        )
    return found


def _autonomous(conn: Connection, conditions: list) -> int:
    """Completed runs whose only attempt is their first run, and it completed."""
    per_run = (
        sa.select(
            attempts.c.run_id,
            sa.func.count().label("attempts"),
            sa.func.sum(sa.case(((attempts.c.kind == "run") & (attempts.c.status == Status.COMPLETED), 1), else_=0)).label("clean"),
        )
        .group_by(attempts.c.run_id)
        .subquery()
    )
    query = (
        sa.select(sa.func.count())
        .select_from(runs.join(per_run, per_run.c.run_id == runs.c.id))
        .where(*conditions, runs.c.status == Status.COMPLETED, per_run.c.attempts == 1, per_run.c.clean == 1)
    )
    return int(conn.execute(query).scalar() or 0)


def _recovery_times(conn: Connection, in_window: Any) -> list[float]:
    """Seconds from each attempt that ended without completing to the later attempt of its run that completed."""
    failed, fixed = attempts.alias("failed"), attempts.alias("fixed")
    query = (
        sa.select(failed.c.finished_at, sa.func.min(fixed.c.finished_at).label("recovered_at"))
        .select_from(failed.join(fixed, (fixed.c.run_id == failed.c.run_id) & (fixed.c.number > failed.c.number)))
        .where(
            failed.c.run_id.in_(in_window),
            failed.c.status.not_in((Status.COMPLETED, Status.RUNNING)),
            failed.c.finished_at.is_not(None),
            fixed.c.status == Status.COMPLETED,
            fixed.c.finished_at.is_not(None),
        )
        .group_by(failed.c.run_id, failed.c.number, failed.c.finished_at)
    )
    return [float(recovered_at) - float(failed_at) for failed_at, recovered_at in conn.execute(query)]


def _first_results(conn: Connection, conditions: list) -> list[float]:
    """Per run that has a completed task: seconds from its creation to its first completed task."""
    first = sa.func.min(tasks.c.finished_at)
    query = (
        sa.select(runs.c.created_at, first.label("first_at"))
        .select_from(runs.join(tasks, tasks.c.run_id == runs.c.id))
        .where(*conditions, tasks.c.status == Status.COMPLETED, tasks.c.finished_at.is_not(None))
        .group_by(runs.c.id, runs.c.created_at)
    )
    return [float(first_at) - float(created_at) for created_at, first_at in conn.execute(query)]


def _completed_run_costs(conn: Connection, conditions: list) -> list[float]:
    """Each completed run's own total: its LLM calls plus its sandbox hours."""
    completed = sa.select(runs.c.id).where(*conditions, runs.c.status == Status.COMPLETED).scalar_subquery()
    llm = (
        sa.select(llm_calls.c.run_id, sa.func.sum(llm_calls.c.cost_usd).label("usd"))
        .where(llm_calls.c.run_id.in_(completed))
        .group_by(llm_calls.c.run_id)
        .subquery()
    )
    hours = (
        sa.select(sandbox_usage.c.run_id, sa.func.sum(sandbox_usage.c.cost_usd).label("usd"))
        .where(sandbox_usage.c.run_id.in_(completed))
        .group_by(sandbox_usage.c.run_id)
        .subquery()
    )
    query = (
        sa.select(sa.func.coalesce(llm.c.usd, 0.0) + sa.func.coalesce(hours.c.usd, 0.0))
        .select_from(runs.outerjoin(llm, llm.c.run_id == runs.c.id).outerjoin(hours, hours.c.run_id == runs.c.id))
        .where(*conditions, runs.c.status == Status.COMPLETED)
    )
    return [float(v) for v in conn.execute(query).scalars()]
