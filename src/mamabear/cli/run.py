"""mamabear run CREW"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, nullcontext, redirect_stdout
from typing import Optional

import typer
from rich.markup import escape

from mamabear.cli.options import JSON, debug_enabled
from mamabear.cli.output import console, emit_json, is_tty, print_error, table
from mamabear.errors import UsageError


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-i {pair}: inputs are written KEY=VALUE, for example -i topic=\"solar power\".")
        given[key.strip()] = value
    return given


def render_plan(plan: object, json_out: bool) -> None:
    data = plan.to_dict()  # type: ignore[attr-defined]
    if json_out:
        emit_json({"dry_run": True, **data})
        return
    out = console()
    out.print(f"[bold]{data['crew']}[/] ({data['process']}" + (f", manager {data['manager']}" if data["manager"] else "") + ")")
    out.print("inputs: " + (", ".join(f"{k}={v!r}" for k, v in data["inputs"].items()) or "none"))
    agents = table("agent", "tier", "temp", "model")
    for a in data["agents"]:
        agents.add_row(a["id"], a["tier"], f"{a['temperature']:g}", a["model"] + (f" via {a['route']['base_url']}" if "base_url" in a["route"] else ""))
    out.print(agents)
    tasks = table("#", "task", "agent", "tier", "model")
    for t in data["tasks"]:
        tasks.add_row(str(t["position"]), t["id"], t["agent"] or "(manager assigns)", t["tier"] or "-", t["model"] or "-")
    out.print(tasks)
    for problem in data["problems"]:
        out.print(f"[yellow]warning:[/] {escape(problem)}")
    out.print("[dim]dry run: no model was called[/]")


def run(
    crew: str = typer.Argument(..., metavar="CREW", help="A crew name, see `mamabear crews list`."),
    inputs: list[str] = typer.Option([], "-i", "--input", metavar="KEY=VALUE", help="A crew input; repeat for more."),
    model: Optional[str] = typer.Option(None, "--model", help="Use this model for every agent (env MAMABEAR_MODEL)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="An OpenAI-compatible server (env MAMABEAR_BASE_URL)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and call no model."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    json_out: bool = JSON,
) -> None:
    """Run a crew."""
    from mamabear.plan import make_plan
    from mamabear.workspace import Workspace

    given = parse_inputs(inputs)
    ws = Workspace(model=model, base_url=base_url)
    plan = make_plan(ws.catalog, ws.models, crew, given, ws.settings, strict=not dry_run)
    if dry_run:
        render_plan(plan, json_out)
        return

    from mamabear.progress import LiveProgress, PlainProgress
    from mamabear.report import run_report
    from mamabear.runner import execute

    if quiet:
        progress = None
    elif is_tty(sys.stderr):
        progress = LiveProgress(console(stderr=True))
    else:
        progress = PlainProgress()
    # stdout carries only the result: what CrewAI and its libraries print goes to stderr with --debug, else nowhere.
    with ExitStack() as stack:
        chatter = sys.stderr if debug_enabled() else stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(progress or nullcontext())
        stack.enter_context(redirect_stdout(chatter))
        result = execute(ws, plan, [progress] if progress else [])

    if json_out:
        emit_json(run_report(ws.store, result.run_id))
    elif result.output is not None:
        sys.stdout.write(result.output.rstrip("\n") + "\n")
    if result.error:
        print_error(f"run {result.run_id} {result.status}: {result.error}")
    raise typer.Exit(result.exit_code)
