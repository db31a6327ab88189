"""mamabear runs list|show|logs"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape
from rich.text import Text

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, status_text, table, when
from mamabear.config.durations import fmt_seconds
from mamabear.config.money import fmt_usd
from mamabear.status import Status

if TYPE_CHECKING:
    from mamabear.store.rows import RunRow

app = typer.Typer(help="Runs recorded in the run store.", no_args_is_help=True)


def _duration(start: float | None, end: float | None) -> str:
    return fmt_seconds(end - start) if start and end else "-"


def _store():  # noqa: ANN202
    from mamabear.engine.services import Services

    return Services().store


@app.command("list")
def list_runs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs, newest first."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
    crew: Optional[str] = typer.Option(None, "--crew", help="Only runs of this crew."),
    json_out: bool = JSON,
) -> None:
    """List recent runs with their status, tokens and cost."""
    from mamabear.store.liveness import current_runs

    rows = current_runs(_store(), limit, status, crew)
    if json_out:
        emit_json(rows_for_json(rows))
        return
    pool = any(r.worker for r in rows)  # runs on workers: say which holds each
    out = table("id", "crew", "status", *(["worker"] if pool else []), "started", "took", "calls", "tokens in/out", "cost")
    for r in rows:
        out.add_row(
            r.id,
            r.crew,
            status_text(r.status),
            *([r.worker or "-"] if pool else []),
            when(r.created_at),
            fmt_seconds(r.seconds) if r.status != Status.RUNNING else "-",
            str(r.llm_calls),
            f"{r.tokens_in:,}/{r.tokens_out:,}",
            fmt_usd(r.cost_usd, r.unpriced_calls),
        )
    console().print(out)


def rows_for_json(rows: list[RunRow]) -> list[dict]:
    keep: tuple[str, ...] = ("id", "crew", "status", "process", "inputs", "error", "created_at", "finished_at", "seconds")
    keep += ("llm_calls", "tokens_in", "tokens_out", "cost_usd", "unpriced_calls")
    where = ("host", "worker", "heartbeat_at")  # where it runs or ran (a worker pool, or machines sharing the store)
    return [{k: getattr(r, k) for k in (*keep, *where)} for r in rows]


@app.command("show")
def show_run(run_id: str = typer.Argument(..., metavar="RUN_ID"), json_out: bool = JSON) -> None:
    """Show one run: its tasks, every LLM and tool call, and its output."""
    from mamabear.cli.mission_view import with_mission
    from mamabear.store.liveness import current_run
    from mamabear.store.report import run_report

    store = _store()
    run_id = store.resolve_run_id(run_id)
    current_run(store, run_id)
    report = with_mission(store, run_report(store, run_id, details=True))
    if json_out:
        emit_json(report)
        return
    out = console()
    out.print(
        Text.assemble(
            (report["run_id"], "bold"),
            f"  crew {report['crew']}  ",
            status_text(report["status"]),
            f"  started {when(report['created_at'])}, took {fmt_seconds(report['totals']['seconds'])}",
        )
    )
    if report["inputs"]:
        out.print("inputs: " + escape(", ".join(f"{k}={v!r}" for k, v in report["inputs"].items())))
    if report["parent"]:
        out.print(f"forked from run {report['parent']['run_id']} at task {escape(report['parent']['from_task'])}")
    for child in report["forks"]:
        out.print(f"fork: run {child['run_id']} from task {escape(child['from_task'] or '?')} ({child['status']})")
    if report["error"]:
        out.print(f"[red]error:[/] {escape(report['error'])}")
    tasks = table("#", "task", "agent", "model", "status", "took", "calls", "tokens in/out", "cost", title="tasks")
    for t in report["tasks"]:
        tasks.add_row(
            str(t["position"]),
            t["task"],
            t["agent"] or "manager",
            t["model"] or "-",
            status_text(t["status"]),
            "-" if t["seconds"] is None else f"{t['seconds']:.1f}s",
            str(t["llm_calls"]),
            f"{t['tokens_in']:,}/{t['tokens_out']:,}",
            fmt_usd(t["cost_usd"], t["unpriced_calls"]),
        )
    if len(report["attempts"]) > 1:
        attempts = table("attempt", "kind", "status", "started", "took", "error", title="attempts")
        for a in report["attempts"]:
            attempts.add_row(
                str(a["number"]),
                a["kind"],
                status_text(a["status"]),
                when(a["started_at"]),
                _duration(a["started_at"], a["finished_at"]),
                (a["error"] or "")[:80],
            )
        out.print(attempts)
    if "mission" in report:
        from mamabear.cli.mission_view import print_tables

        print_tables(out, report["mission"])
    tot = report["totals"]
    tokens = f"{tot['tokens_in']:,}/{tot['tokens_out']:,}"
    tasks.add_row("", "total", "", "", "", "", str(tot["llm_calls"]), tokens, fmt_usd(tot["cost_usd"], tot["unpriced_calls"]))
    out.print(tasks)
    calls = table("#", "try", "task", "agent", "model", "outcome", "latency", "tokens in/out", "cost", title="LLM calls")
    for i, c in enumerate(report["llm_calls"], start=1):
        latency = "-" if c["latency_ms"] is None else f"{c['latency_ms']:.0f}ms"
        outcome = c["outcome"] if c["outcome"] != "error" else Text.assemble(("error", "red"), f" {(c['error'] or '')[:60]}")
        outcome = Text("cached", style="cyan") if c["cache_hit"] else outcome
        calls.add_row(
            str(i),
            str(c["attempt"] or "-"),
            str(c["task_position"] or "-"),
            c["agent"] or "-",
            c["model"] or "-",
            outcome,
            latency,
            f"{c['tokens_in']:,}/{c['tokens_out']:,}",
            "unpriced" if c.get("unpriced") else f"${c['cost_usd']:.4f}",
        )
    out.print(calls)
    _print_costs(out, report)
    if report["tool_calls"]:
        tools = table("#", "task", "agent", "tool", "ok", "took", "arguments", title="tool calls")
        for i, c in enumerate(report["tool_calls"], start=1):
            took = "-" if c["duration_ms"] is None else f"{c['duration_ms']:.0f}ms"
            tools.add_row(
                str(i),
                str(c["task_position"] or "-"),
                c["agent"] or "-",
                c["tool"],
                "yes" if c["ok"] else Text("no", style="red"),
                took,
                (c["arguments"] or "")[:60],
            )
        out.print(tools)
    if report["sandbox_actions"]:
        _print_sandbox(out, report)
    if report["memory"]["saved"] or report["memory"]["recalled"]:
        _print_memory(out, report["memory"])
    if report["output"]:
        out.print("[bold]output[/]")
        out.print(escape(report["output"]))


def _print_costs(out: Any, report: dict) -> None:
    for key, title in (("agent", "cost by agent"), ("model", "cost by model")):
        rows = table(key, "calls", "errors", "tokens in/out", "cost", "cache hits", "saved", title=title)
        for r in report["cost_by"][key]:
            rows.add_row(
                str(r[key] or "-"),
                str(r["llm_calls"]),
                str(r["errors"]),
                f"{r['tokens_in']:,}/{r['tokens_out']:,}",
                fmt_usd(r["cost_usd"], r["unpriced_calls"]),
                str(r["cache_hits"]),
                f"${r['saved_usd']:.4f}",
            )
        out.print(rows)
    tot = report["totals"]
    if tot["cache_hits"] or tot["prompt_cached_tokens"]:
        out.print(
            f"[cyan]response cache: {tot['cache_hits']} hits, ${tot['saved_usd']:.4f} saved; "
            f"provider prompt cache: {tot['prompt_cached_tokens']:,} input tokens[/]"
        )


def _print_memory(out: Any, memory: dict) -> None:
    rows = table("", "task", "scope", "memory", title="memory")
    for r in memory["recalled"]:
        rows.add_row("recalled", str(r["task_position"] or "-"), "", f"{len(r['ids'])} for: {r['query'][:70]}")
    for s in memory["saved"]:
        rows.add_row("saved", "", s["scope"], s["content"][:90])
    out.print(rows)


def _print_sandbox(out: Any, report: dict) -> None:
    tot = report["totals"]
    title = (
        f"sandbox session {report['session_id']}: {len(report['sandbox_actions'])} actions, "
        f"{tot['sandbox_seconds'] / 3600:.2f} h billed (${tot['sandbox_usd']:.4f})"
    )
    actions = table("#", "task", "agent", "action", "exit", "took", "command or path", "output", title=title)
    for i, a in enumerate(report["sandbox_actions"], start=1):
        code = Text("refused", style="red") if not a["allowed"] else "-" if a["exit_code"] is None else str(a["exit_code"])
        took = "-" if a["duration_ms"] is None else f"{a['duration_ms']:.0f}ms"
        first = (a["output"] or "").strip().splitlines()[:1]
        actions.add_row(str(i), str(a["task_position"] or "-"), a["agent"] or "-", a["action"], code, took, a["target"][:60], first[0][:50] if first else "")
    out.print(actions)


def _print_event(event: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(event, default=str, ensure_ascii=False), flush=True)
    else:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["ts"]))
        print(f"{stamp} {event['message']}", flush=True)


@app.command("logs")
def logs(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events until the run ends."),
    json_out: bool = typer.Option(False, "--json", help="One JSON document (a list); with --follow, one JSON object per line."),
) -> None:
    """Print a run's events from the store."""
    store = _store()
    run_id = store.resolve_run_id(run_id)
    events = store.events(run_id)
    if json_out and not follow:
        emit_json(events)
        return
    for event in events:
        _print_event(event, json_out)
    last = events[-1]["id"] if events else 0
    from mamabear.store.liveness import current_run

    while follow:
        finished = current_run(store, run_id).status != Status.RUNNING
        new = store.events(run_id, after_id=last)
        for event in new:
            _print_event(event, json_out)
            last = event["id"]
        if finished and not new:
            break
        time.sleep(0.3)


@app.command("trace")
def trace(run_id: str = typer.Argument(..., metavar="RUN_ID"), json_out: bool = JSON) -> None:
    """Draw a run's span tree: every attempt, task, agent step, model, tool and memory call, with time, tokens and cost."""
    from mamabear.engine.services import Services
    from mamabear.telemetry.jsonl import read_trace, span_tree

    ws = Services()
    run_id = ws.store.resolve_run_id(run_id)
    spans = read_trace(ws.settings.home, run_id)
    if json_out:
        emit_json(spans)
        return
    from rich.tree import Tree

    top = Tree(f"[bold]{run_id}[/] trace {spans[0]['trace_id'] if spans else '-'}")
    for root in span_tree(spans):
        _add_span(top, root)
    console().print(top)


def _span_label(node: Any) -> str:
    record, attrs = node.record, node.record["attributes"]
    seconds = node.seconds
    parts = [f"[bold]{escape(record['name'])}[/]", f"{seconds * 1000:.0f}ms" if seconds < 1 else fmt_seconds(seconds)]
    if record["name"].startswith("crew "):
        parts.append(f"attempt {attrs.get('mamabear.attempt')}")
    tokens_in, tokens_out = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
    if tokens_in or tokens_out:
        parts.append(f"{tokens_in or 0:,}+{tokens_out or 0:,} tokens")
    if attrs.get("mamabear.cost_usd"):
        parts.append(f"${attrs['mamabear.cost_usd']:.4f}")
    if attrs.get("mamabear.cache_hit"):
        parts.append(f"[cyan]cached[/] (saved ${attrs.get('mamabear.cache.saved_usd') or 0:.4f})")
    if attrs.get("gen_ai.agent.name") and not record["name"].startswith("invoke_agent"):
        parts.append(f"[dim]{escape(str(attrs['gen_ai.agent.name']))}[/]")
    if record["status"] == "error":
        parts.append(f"[red]{escape((record['status_message'] or 'error')[:80])}[/]")
    return "  ".join(parts)


def _add_span(tree: Any, node: Any) -> None:
    branch = tree.add(_span_label(node))
    for child in node.children:
        _add_span(branch, child)


@app.command("cancel")
def cancel(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    wait: float = typer.Option(30.0, "--wait", min=0, help="Seconds to wait for the run to stop."),
    json_out: bool = JSON,
) -> None:
    """Stop a running run cleanly: it checkpoints, records itself cancelled, and can be resumed."""
    from mamabear.store.liveness import cancel_run

    store = _store()
    run = cancel_run(store, store.resolve_run_id(run_id), wait_s=wait)
    if json_out:
        emit_json({"run_id": run.id, "status": run.status, "cancel_requested": True})
        return
    if run.status == Status.RUNNING:
        console().print(f"cancel requested; run {run.id} stops before its next model call.")
    else:
        console().print(f"run {run.id} {run.status}; `mamabear resume {run.id}` continues it.")


@app.command("fork")
def fork(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    from_task: str = typer.Option(..., "--from", metavar="TASK", help="The task the fork starts at (its id or position); the ones before keep their outputs."),
    inputs: list[str] = typer.Option([], "-i", "--input", metavar="KEY=VALUE", help="An input that differs from the parent's; repeat for more."),
    model: Optional[str] = typer.Option(None, "--model", help="Use this model for every agent of the fork."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Send the fork's requests to this OpenAI-compatible server."),
    queue: Optional[str] = typer.Option(None, "--queue", is_flag=False, flag_value="default", metavar="[QUEUE]", help="Send the fork to the worker pool."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_out: bool = JSON,
) -> None:
    """Start a new run from one task of a run: the tasks before it keep their outputs (no model is asked for them)."""
    from mamabear.cli.run import launch, read_inputs, send_queued
    from mamabear.engine.fork import prepare_fork, record_fork

    ws, plan, limits, fork = prepare_fork(run_id, from_task, read_inputs(None, inputs), model, base_url)
    if queue is None:
        launch(ws, plan, limits, quiet, json_out, run_id=record_fork(ws, plan, limits, fork), resume=True)
    else:
        send_queued(ws, queue, json_out, lambda: record_fork(ws, plan, limits, fork, queue=queue), shown={"parent": fork.parent.id})
