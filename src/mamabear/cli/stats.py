"""mamabear stats: fleet KPIs over recent runs (computed in mamabear.store.stats; rendered here)."""

from __future__ import annotations

from typing import Optional

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table, when


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def stats(
    since: str = typer.Option("7d", "--since", help="Runs created within this long ago, like 24h or 7d; 'all' for every run."),
    crew: Optional[str] = typer.Option(None, "--crew", help="Only runs of this crew."),
    json_out: bool = JSON,
) -> None:
    """Fleet KPIs: success and autonomy rates, time to recovery and to first result, cost, LLM errors and latency."""
    from rich.markup import escape

    from mamabear.config.durations import fmt_seconds
    from mamabear.config.limits import parse_duration
    from mamabear.engine.services import Services
    from mamabear.store.stats import fleet_stats

    since_s = None if since.strip().lower() == "all" else parse_duration(since, flag="--since")
    doc = fleet_stats(Services().store, since_s, crew=crew)  # runs whose process died are settled first
    if json_out:
        emit_json(doc)
        return
    out = console()
    scope = f" of crew {escape(crew)}" if crew else ""
    since_at = doc["window"]["since"]
    r = doc["runs"]
    if not r["total"]:
        out.print(f"no runs{scope} since {when(since_at)}." if since_at is not None else f"no runs{scope} yet.")
        return
    window = f"since {when(since_at)}" if since_at is not None else "all time"
    statuses = ", ".join(f"{n} {s}" for s, n in r["by_status"].items())
    first = doc["time_to_first_result_s"]
    llm = doc["llm"]
    cost = doc["cost"]
    rows = table("", "", title=f"{_n(r['total'], 'run')}{scope}, {window}")
    rows.show_header = False
    rows.add_row("runs", f"{r['finished']} finished, {r['running']} running ({statuses})")
    rows.add_row("success rate", f"{_pct(doc['success_rate'])} ({r['completed']} of {r['finished']} finished runs completed)")
    rows.add_row("autonomous", f"{_pct(doc['autonomous_rate'])} ({r['autonomous']} completed in one attempt, untouched)")
    rows.add_row(
        "recovery", f"MTTR {fmt_seconds(doc['mttr_s'])} over {_n(doc['recoveries'], 'recovered attempt')}; {_n(doc['unrecovered'], 'run')} unrecovered"
    )
    rows.add_row("first result", f"mean {fmt_seconds(first['mean'])}, p50 {fmt_seconds(first['p50'])} ({_n(first['runs'], 'run')})")
    rows.add_row(
        "cost",
        f"{_usd(cost['total_usd'])} total (LLM {_usd(cost['llm_usd'])}, sandbox {_usd(cost['sandbox_usd'])}); "
        f"{_usd(cost['cost_per_completed_run_usd'])} per completed run",
    )
    rows.add_row(
        "LLM calls",
        f"{_n(llm['calls'], 'call')}, {_n(llm['errors'], 'error')} ({_pct(llm['error_rate'])}); tokens {llm['tokens_in']:,} in / {llm['tokens_out']:,} out",
    )
    rows.add_row(
        "LLM latency",
        f"p50 {_ms(llm['latency_ms']['p50'])}, p95 {_ms(llm['latency_ms']['p95'])} ({_n(llm['latency_ms']['samples'], 'answered call')}, cache hits excluded)",
    )
    rows.add_row("cache", f"{_n(llm['cache_hits'], 'hit')}, saved {_usd(llm['saved_usd'])}")
    out.print(rows)
    if doc["evals"]:
        evals = table("eval", "day", "runs", "pass rate", "score", "cost per pass", title="evals")
        for e in doc["evals"]:
            evals.add_row(
                e["eval"], e["day"], str(e["runs"]), _pct(e["pass_rate"]), "-" if e["score"] is None else f"{e['score']:.1f}", _usd(e["cost_per_pass_usd"])
            )
        out.print(evals)
