"""A run as one document, read back from the store: what `run --json` and `runs show --json` print."""

from __future__ import annotations

from typing import Any

from mamabear.config.money import known_cost
from mamabear.store.database import Store
from mamabear.store.ledger import Ledger
from mamabear.store.rows import RunRow


def _seconds(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start and end else None


def run_seconds(run: RunRow, attempts: list[dict[str, Any]]) -> float | None:
    """A run's time, defined once: each attempt from its command's start to its end, added up (the gaps between are not the run's)."""
    spans = [_seconds(a["started_at"], a["finished_at"]) for a in attempts]
    if attempts and all(s is not None for s in spans):
        return round(sum(spans), 3)  # type: ignore[arg-type]  # all numbers: checked on the line above
    return _seconds(run.created_at, run.finished_at)  # unfinished, or recorded before attempts were


def breakdown(calls: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Calls, tokens, cost and cache savings per agent, model or task position, costliest first."""
    groups: dict[Any, dict[str, Any]] = {}
    for c in calls:
        row = groups.setdefault(
            c[key],
            {key: c[key], "llm_calls": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "cache_hits": 0, "saved_usd": 0.0, "errors": 0}
            | {"unpriced_calls": 0},
        )
        row["llm_calls"] += 1
        row["tokens_in"] += c["tokens_in"] or 0
        row["tokens_out"] += c["tokens_out"] or 0
        row["cost_usd"] += c["cost_usd"] or 0.0
        row["cache_hits"] += 1 if c["cache_hit"] else 0
        row["saved_usd"] += c["saved_usd"] or 0.0
        row["errors"] += 1 if c["outcome"] == "error" else 0
        row["unpriced_calls"] += 1 if c.get("unpriced") else 0
    for row in groups.values():
        row["cost_usd"], row["saved_usd"] = known_cost(row["cost_usd"], row["unpriced_calls"]), round(row["saved_usd"], 6)
    return sorted(groups.values(), key=lambda r: (-(r["cost_usd"] or 0.0), str(r[key])))


def run_report(store: Store, run_id: str, details: bool = False) -> dict[str, Any]:
    run = store.run(run_id)
    tasks = store.tasks(run_id)
    report: dict[str, Any] = {
        "run_id": run.id,
        "crew": run.crew,
        "status": run.status,
        "process": run.process,
        "inputs": run.inputs,
        "output": run.output,
        "error": run.error,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "parent": {"run_id": run.parent_id, "from_task": run.forked_from} if run.parent_id else None,
        "forks": [{"run_id": f.id, "from_task": f.forked_from, "status": f.status} for f in store.forks(run.id)],
        "tasks": [
            {
                "position": t.position,
                "task": t.task,
                "agent": t.agent,
                "model": t.model,
                "status": t.status,
                "output": t.output,
                "error": t.error,
                "tokens_in": t.tokens_in,
                "tokens_out": t.tokens_out,
                "cost_usd": known_cost(t.cost_usd, t.unpriced_calls),
                "unpriced_calls": t.unpriced_calls,
                "llm_calls": t.llm_calls,
                "seconds": _seconds(t.started_at, t.finished_at),
                "worker": t.worker,  # a mission's step another worker carried out
            }
            for t in tasks
        ],
    }
    attempts = store.attempts(run_id)
    report["attempts"] = [{k: a[k] for k in ("number", "kind", "status", "error", "started_at", "finished_at", "checkpoint")} for a in attempts]
    calls = store.llm_calls(run_id)
    tools = store.tool_calls(run_id)
    ledger = Ledger(store)
    usage = ledger.usage(run_id)
    actions = ledger.actions(run_id=run_id)
    sandbox_usd = sum(u["cost_usd"] for u in usage)
    report["session_id"] = run.session_id
    unpriced = sum(1 for c in calls if c.get("unpriced"))
    report["totals"] = {
        "tokens_in": sum(c["tokens_in"] for c in calls),
        "tokens_out": sum(c["tokens_out"] for c in calls),
        "cost_usd": known_cost(sum(c["cost_usd"] for c in calls) + sandbox_usd, unpriced),  # models and sandbox hours
        "unpriced_calls": unpriced,  # calls of a model with no known price: not in cost_usd
        "sandbox_usd": round(sandbox_usd, 6),
        "sandbox_seconds": round(sum(u["seconds"] for u in usage), 3),
        "llm_calls": len(calls),
        "llm_errors": sum(1 for c in calls if c["outcome"] == "error"),
        "cache_hits": sum(1 for c in calls if c["cache_hit"]),
        "saved_usd": round(sum(c["saved_usd"] or 0.0 for c in calls), 6),
        "prompt_cached_tokens": sum(c["cached_tokens"] or 0 for c in calls),
        "tool_calls": len(tools),
        "sandbox_actions": len(actions),
        "sandbox_refused": sum(1 for a in actions if not a["allowed"]),
        "seconds": run_seconds(run, attempts),
    }
    report["cost_by"] = {"agent": breakdown(calls, "agent"), "model": breakdown(calls, "model"), "task": breakdown(calls, "task_position")}
    memory = store.events(run_id, kinds=("memory_saved", "memory_recalled"))
    report["memory"] = {
        "saved": [e["data"] for e in memory if e["kind"] == "memory_saved"],
        "recalled": [{**e["data"], "task_position": e["task_position"]} for e in memory if e["kind"] == "memory_recalled"],
    }
    if details:
        report["llm_calls"] = calls
        report["tool_calls"] = tools
        report["sandbox_actions"] = actions
    return report
