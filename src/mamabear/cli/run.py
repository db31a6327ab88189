"""mamabear run CREW"""

from __future__ import annotations

import sys
from contextlib import nullcontext, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, is_tty, library_chatter_off, print_error, table
from mamabear.errors import UsageError
from mamabear.status import Status

if TYPE_CHECKING:  # for annotations only: the CLI imports these when a command needs them
    from mamabear.cli.progress import LiveProgress, PlainProgress
    from mamabear.config.limits import Limits
    from mamabear.engine.attempt_end import RunResult
    from mamabear.engine.plan import Plan
    from mamabear.engine.services import Services
    from mamabear.observe import RunObserver


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f'-i {pair}: inputs are written KEY=VALUE, for example -i topic="solar power".')
        try:
            pair.encode("utf-8")  # the shell passed bytes that are not UTF-8 (Python keeps them as lone surrogates)
        except UnicodeEncodeError:
            shown = pair.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            raise UsageError(f"-i {shown}: the value is not UTF-8 text; pass it as UTF-8.") from None
        given[key.strip()] = value
    return given


def read_inputs(source: str | None, pairs: list[str]) -> dict[str, str]:
    """Inputs from ``--inputs FILE`` (YAML or JSON, a mapping; ``-`` for stdin), then ``-i KEY=VALUE`` over them."""
    given: dict[str, str] = {}
    if source is not None:
        import yaml

        where = "stdin" if source == "-" else source
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
            doc = yaml.safe_load(text) if text.strip() else {}
        except OSError as exc:
            raise UsageError(f"--inputs {source}: cannot read it ({exc.strerror}).") from exc
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UsageError(f"--inputs {where}: not YAML or JSON ({str(exc).splitlines()[0]}).") from exc
        if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
            raise UsageError(f"--inputs {where}: it must be a mapping of input names to values, such as topic: otters.")
        bad = [k for k, v in doc.items() if isinstance(v, (dict, list)) or v is None]
        if bad:
            raise UsageError(f"--inputs {where}: input '{bad[0]}' must be text or a number, not a list, mapping or nothing.")
        given = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in doc.items()}
    return given | parse_inputs(pairs)


def render_plan(plan: Plan, json_out: bool) -> None:
    data = plan.to_dict()
    if json_out:
        emit_json({"dry_run": True, **data})
        return
    out = console()
    out.print(f"[bold]{data['crew']}[/] ({data['process']}" + (f", manager {data['manager']}" if data["manager"] else "") + ")")
    out.print("inputs: " + (", ".join(f"{k}={v!r}" for k, v in data["inputs"].items()) or "none"))
    agents = table("agent", "tier", "temp", "model", "tools")
    for a in data["agents"]:
        agents.add_row(
            a["id"],
            a["tier"],
            f"{a['temperature']:g}",
            a["model"] + (f" via {a['route']['base_url']}" if "base_url" in a["route"] else ""),
            ", ".join(a["tools"]) or "-",
        )
    out.print(agents)
    if data["sandbox"]:
        box = data["sandbox"]
        where = f"session {box['session']}" if box["session"] else f"a {'pooled ' if box['reuse'] else ''}{box['kind']} session"
        out.print(f"sandbox: {box['backend']}, {where}, started at the first tool call")
    tasks = table("#", "task", "agent", "tier", "model")
    for t in data["tasks"]:
        tasks.add_row(str(t["position"]), t["id"], t["agent"] or "(manager assigns)", t["tier"] or "-", t["model"] or "-")
    out.print(tasks)
    err = console(stderr=True)  # stdout is the plan; what is wrong with it is said where people look for problems
    for problem in data["problems"]:
        err.print(f"[yellow]warning:[/] {escape(problem)}")
    for model in data["unpriced"]:
        err.print(
            f"[yellow]warning:[/] no price is known for {escape(model)}: its calls would be shown as unpriced and no --budget-usd "
            f"could stop them; add it under prices: in config/models.yaml."
        )
    for warning in data["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    for note in data["notes"]:
        err.print(f"[dim]note: {escape(note)}[/]")
    err.print("[dim]dry run: no model was called[/]")


BUDGET_USD = typer.Option(None, "--budget-usd", metavar="USD", help="Stop before any model call once the run has spent this much.")
BUDGET_TOKENS = typer.Option(None, "--budget-tokens", metavar="N", help="Stop before any model call once the run has used this many tokens.")
MAX_DURATION = typer.Option(None, "--max-duration", metavar="SPAN", help="Stop at the next step after this long, e.g. 90s, 30m, 24h.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress output.")
MODEL = typer.Option(None, "--model", help="Use this model for every agent (env MAMABEAR_MODEL).")
BASE_URL = typer.Option(None, "--base-url", help="An OpenAI-compatible server (env MAMABEAR_BASE_URL).")
NO_MEMORY = typer.Option(False, "--no-memory", help="Neither recall nor save memories in this run (env MAMABEAR_NO_MEMORY=1).")
NO_CACHE = typer.Option(False, "--no-cache", help="Send every model request to the provider; no response cache (env MAMABEAR_NO_CACHE=1).")
DETACH = typer.Option(False, "--detach", "-d", help="Run in the background; print the run id and return.")
RUN_ID = typer.Option(None, "--run-id", hidden=True)  # given by --detach to its background process
QUEUE = typer.Option(
    None,
    "--queue",
    is_flag=False,
    flag_value="default",
    metavar="[QUEUE]",
    help="Send the run to the worker pool (MAMABEAR_BROKER_URL), on QUEUE (default); print its id.",
)
RECORD = typer.Option(None, "--record", metavar="FILE", help="Write every model request and answer to FILE (JSONL, secrets redacted).")
REPLAY = typer.Option(None, "--replay", metavar="FILE", help="Take every answer from FILE (made by --record); call no model (env MAMABEAR_REPLAY).")
BOTH_BACKGROUNDS = "--queue and --detach both run it in the background (--queue on a worker, --detach here); give one."
ANSWERS = typer.Option(
    None, "--answers", metavar="FILE", help="Feedback for tasks with human_input, from a YAML mapping of task id to its rounds (no terminal needed)."
)


def limits_from(budget_usd: float | None, budget_tokens: int | None, max_duration: str | None) -> dict:
    from mamabear.config.limits import parse_duration

    return {"budget_usd": budget_usd, "budget_tokens": budget_tokens, "max_duration_s": parse_duration(max_duration) if max_duration is not None else None}


def complete_crew(incomplete: str) -> list[str]:
    """Shell completion of crew names (--install-completion)."""
    from mamabear.engine.services import Services

    try:
        return [name for name in Services().catalog.crew_files() if name.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - a broken config must not break the user's shell
        return []


def run(
    ctx: typer.Context,
    crew: Optional[str] = typer.Argument(
        None, metavar="[CREW]", help="A crew name, see `mamabear crews list` (in a CrewAI project: its crew, by default).", autocompletion=complete_crew
    ),
    inputs: list[str] = typer.Option([], "-i", "--input", metavar="KEY=VALUE", help="A crew input; repeat for more."),
    inputs_file: Optional[str] = typer.Option(None, "--inputs", metavar="FILE", help="Inputs from a YAML or JSON mapping; - reads stdin (-i wins)."),
    model: Optional[str] = MODEL,
    base_url: Optional[str] = BASE_URL,
    budget_usd: Optional[float] = BUDGET_USD,
    budget_tokens: Optional[int] = BUDGET_TOKENS,
    max_duration: Optional[str] = MAX_DURATION,
    sandbox: Optional[str] = typer.Option(None, "--sandbox", metavar="BACKEND", help="Where agents' tools run: local or scrapybara (env MAMABEAR_SANDBOX)."),
    session: Optional[str] = typer.Option(None, "--session", metavar="ID", help="Work in this existing sandbox session."),
    no_memory: bool = NO_MEMORY,
    no_cache: bool = NO_CACHE,
    detach: bool = DETACH,
    queue: Optional[str] = QUEUE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and call no model."),
    answers_file: Optional[str] = ANSWERS,
    record: Optional[str] = RECORD,
    replay: Optional[str] = REPLAY,
    quiet: bool = QUIET,
    json_out: bool = JSON,
    run_id: Optional[str] = RUN_ID,
) -> None:
    """Run a crew."""
    from mamabear.config.limits import Limits
    from mamabear.engine.plan import make_plan
    from mamabear.engine.services import Services

    given = read_inputs(inputs_file, inputs)
    limits = Limits(**limits_from(budget_usd, budget_tokens, max_duration))
    check_tape(record, replay, queue)
    ws = Services(model=model, base_url=base_url, sandbox=sandbox, session=session, no_memory=no_memory or None, no_cache=no_cache or None)
    ws = ws.rerouted(record=record, replay=replay)
    answers = read_answers(answers_file)
    from mamabear.flow.start import here

    flow = here(ws) if crew is None else None
    work = None
    if flow is not None:  # a CrewAI flow project's root: its Flow is the run
        from mamabear.flow.start import flow_plan_crew
        from mamabear.flow.work import FlowWork

        spec, methods = flow_plan_crew(flow)
        plan = make_plan(ws.catalog, ws.models, spec, given, ws.settings, strict=not dry_run, sandbox=ws.sandbox, answers=answers)
        plan = replace(plan, notes=(*plan.notes, *methods))
        work = FlowWork(flow, plan.inputs)
    else:
        from mamabear.config.catalog import script_project

        script = script_project(Path.cwd()) if crew is None else None
        if script is not None:
            raise UsageError(
                f"{script}: this CrewAI project builds and starts its crew in its own script, which mamabear cannot plan or resume; "
                "move the crew into a @CrewBase class in src/PACKAGE/crew.py (as `crewai create crew` lays it out), or run the script itself."
            )
        crew = crew or ws.catalog.project_crew_name()
        plan = make_plan(ws.catalog, ws.models, crew, given, ws.settings, strict=not dry_run, sandbox=ws.sandbox, answers=answers)
    if dry_run:
        render_plan(plan, json_out)
        return
    for warning in plan.warnings:
        console(stderr=True).print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if queue is not None:
        if detach:
            raise UsageError(BOTH_BACKGROUNDS)
        to_workers(ws, plan, limits, queue, json_out)
        return
    if detach:
        from mamabear.cli.options import background_args

        in_background(ws, background_args(ctx, given, crew=crew), {}, quiet, json_out)
        return
    launch(ws, plan, limits, quiet, json_out, run_id=run_id, work=work)


def to_workers(ws: Services, plan: Plan, limits: Limits, queue: str, json_out: bool, run_id: str | None = None, extra: dict | None = None) -> None:
    """Queue the run (``run_id``: a stopped run, to continue) for the worker pool; print its id (follow it with
    `runs logs ID --follow`)."""
    from mamabear.engine.queued import check_queueable, queue_resume, queue_run

    check_queueable(plan, limits)  # said before the broker is reached

    def queued() -> str:
        if run_id is None:
            return queue_run(ws, plan, limits, queue, extra)
        queue_resume(ws, plan, limits, run_id, queue)
        return run_id

    send_queued(ws, queue, json_out, queued)


def send_queued(ws: Services, queue: str, json_out: bool, queued: Any, shown: dict | None = None) -> None:
    """Once the broker answers, ``queued()`` records a run queued and gives its id, which is sent to the pool and
    printed (``shown``: more for --json). A run the broker does not take is marked failed, to resume."""
    from mamabear.workers.app import connected, send_or_fail

    app = connected(ws.settings.env)  # before the run is recorded: an unreachable broker leaves no queued run behind
    run_id = queued()
    send_or_fail(app, ws.store, run_id, queue)
    if json_out:
        emit_json({"run_id": run_id, "status": Status.QUEUED, "queue": queue, **(shown or {})})
    else:
        sys.stdout.write(run_id + "\n")


def check_tape(record: str | None, replay: str | None, queue: str | None) -> None:
    """--record/--replay are refused with --queue (the file is on this machine, the run on a worker)."""
    if (record or replay) and queue is not None:
        raise UsageError(f"--{'record' if record else 'replay'} reads or writes a file here and cannot with --queue; run it here, or with --detach.")


def read_answers(path: str | None) -> Any:
    """--answers FILE, read (None without it)."""
    if path is None:
        return None
    from mamabear.config.answers import Answers

    return Answers.load(path)


def in_background(ws: Services, args: list[str], flags: dict[str, Any], quiet: bool, json_out: bool, last: tuple[str, ...] = ()) -> None:
    """Start ``mamabear ARGS`` (with the flags that are set, then ``-- LAST``) detached under a new run id; print the id and return."""
    from mamabear.engine.attempt import new_run_id
    from mamabear.engine.detach import spawn

    run_id = new_run_id()
    args = [*args, "--run-id", run_id, *[a for flag, value in flags.items() if value is not None for a in (flag, str(value))]]
    args += ["--", *last] if last else []
    pid, log = spawn(args, run_id, ws.settings.home, ws.store)
    if json_out:
        emit_json({"run_id": run_id, "status": Status.RUNNING, "pid": pid, "log": str(log)})
    else:
        sys.stdout.write(run_id + "\n")
        if not quiet:
            console(stderr=True).print(f"[dim]running in the background (pid {pid}); follow it with `mamabear runs logs {run_id} --follow`, log in {log}[/]")


def resume(
    run_id: str = typer.Argument(..., metavar="RUN_ID", help="A run id or a unique prefix of one."),
    model: Optional[str] = typer.Option(None, "--model", help="Use this model for every agent from now on."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="Continue against this OpenAI-compatible server."),
    budget_usd: Optional[float] = BUDGET_USD,
    budget_tokens: Optional[int] = BUDGET_TOKENS,
    max_duration: Optional[str] = MAX_DURATION,
    answers_file: Optional[str] = ANSWERS,
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="A mission: this many more model-driven steps."),
    queue: Optional[str] = QUEUE,
    quiet: bool = QUIET,
    json_out: bool = JSON,
) -> None:
    """Continue a stopped or failed run from its last checkpoint; completed tasks are not run again.

    Budgets count the whole run, every attempt; a time limit counts this attempt only.
    The run's model, server and limits are reused unless given again. A mission that
    ended stuck, failed or out of steps is carried on: its items done stay done, the
    others get their tries afresh.
    """
    from mamabear.engine.resume import prepare_resume
    from mamabear.flow import start as flows
    from mamabear.mission.runner import crew_of

    limit_flags = limits_from(budget_usd, budget_tokens, max_duration)
    crew_for = lambda run: crew_of(run) or flows.crew_of(run)  # noqa: E731 - a mission's or a flow's crew, made again
    ws, plan, limits, full_id = prepare_resume(run_id, model, base_url, crew_for=crew_for, answers=read_answers(answers_file), **limit_flags)
    if max_steps is not None and plan.crew.process != "mission":
        raise UsageError(f"--max-steps is for missions; run {full_id} is a run of crew {plan.crew.name}.")
    if queue is not None:
        if max_steps is not None:
            raise UsageError(f"--max-steps cannot go with --queue yet; resume mission {full_id} here with it, or queue it without.")
        to_workers(ws, plan, limits, queue, json_out, run_id=full_id)
        return
    work: Any = None
    if plan.crew.process == "flow" and (project := flows.here(ws)) is not None:
        from mamabear.flow.work import FlowWork

        work = FlowWork(project, plan.inputs, resume=True)
    if plan.crew.process == "mission":
        from mamabear.mission.start import resumed

        work = resumed(ws, full_id, max_steps)
        if ws.settings.env.get("MAMABEAR_WORKER"):  # on a worker: its independent items go to the pool too
            from mamabear.workers.app import mission_pool

            work.pool = mission_pool(ws.settings.env, (ws.store.run(full_id).options or {}).get("queue"), plan.sandbox.backend if plan.sandbox else None)
    launch(ws, plan, limits, quiet, json_out, run_id=full_id, resume=True, work=work)


def step(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    position: int = typer.Argument(..., metavar="POSITION"),
    attempt: int = typer.Argument(..., metavar="ATTEMPT"),
) -> None:
    """Carry out one step a mission on the worker pool sent out (a worker starts it; not for use by hand)."""
    from mamabear.cli.options import command_started
    from mamabear.engine.attempt import Attempt, StepOf
    from mamabear.engine.resume import prepare_step
    from mamabear.mission.runner import crew_of
    from mamabear.mission.step import SentStep

    ws, plan, limits = prepare_step(run_id, attempt, crew_for=crew_of)
    work = SentStep(ws.store, run_id, position, ws.catalog)
    with library_chatter_off():
        result = Attempt(ws, plan, [], limits, run_id=run_id, resume=True, started_at=command_started(), work=work, step=StepOf(position, attempt)).run()
    if result.error:
        print_error(f"step {position} of run {run_id} {result.status}: {result.error}")
    raise typer.Exit(result.exit_code)


def progress_view(quiet: bool, live: bool = True) -> LiveProgress | PlainProgress | None:
    """The progress view that suits where stderr goes: live on a terminal, plain lines otherwise, none when quiet."""
    from mamabear.cli.progress import LiveProgress, PlainProgress

    if quiet:
        return None
    return LiveProgress(console(stderr=True)) if live and is_tty(sys.stderr) else PlainProgress()


def launch(
    ws: Services,
    plan: Plan,
    limits: Limits,
    quiet: bool,
    json_out: bool,
    run_id: str | None = None,
    resume: bool = False,
    work: Any = None,
    progress: Any = False,
) -> None:
    """Execute with the progress view that suits the terminal (or ``progress``, when given), then print the result."""
    from mamabear.engine.attempt import Attempt

    if progress is False:  # a crew that asks a person writes plain lines: CrewAI's question has the terminal
        progress = progress_view(quiet, live=not plan.asks_person)
    real_stdout = sys.stdout
    mission = plan.crew.process == "mission"  # its result is its report

    def abandon(result: RunResult) -> None:  # a stop that cannot wait for CrewAI's worker thread: render, then exit
        if progress is not None:
            progress.__exit__(None, None, None)
        with redirect_stdout(real_stdout):
            render_result(ws, result, json_out, mission)

    from mamabear.cli.options import command_started

    with progress or nullcontext(), nullcontext() if plan.asks_person else library_chatter_off(ws.settings.project_dir):
        observers: list[RunObserver] = [progress] if progress else []
        attempt = Attempt(ws, plan, observers, limits, run_id=run_id, resume=resume, on_abandon=abandon, started_at=command_started(), work=work)
        result = attempt.run()
    render_result(ws, result, json_out, mission)
    raise typer.Exit(result.exit_code)


def next_move(ws: Services, result: RunResult, mission: bool) -> str:
    """What to do about a run that did not complete, as one hint."""
    if mission:
        from mamabear.mission.runner import next_move as mission_move

        said = mission_move(ws.store, result.run_id, result.status)
        if said is not None:
            return said
    more = {
        Status.BUDGET_EXHAUSTED: " with a larger --budget-usd or --budget-tokens",
        Status.TIME_LIMIT: " (--max-duration sets a new limit)",
        Status.FAILED: " once the cause is fixed (--model switches models)",
    }.get(result.status, "")
    return f"continue it with `mamabear resume {result.run_id}`{more}"


def render_result(ws: Services, result: RunResult, json_out: bool, mission: bool = False) -> None:
    """The run's result on stdout: its report with --json, a mission's report, or the crew's output."""
    if json_out or mission:
        from mamabear.cli.mission_view import report_text, with_mission
        from mamabear.store.report import run_report

        report = with_mission(ws.store, run_report(ws.store, result.run_id))
        if json_out:
            emit_json(report)
        else:
            sys.stdout.write(report_text(report))
    elif result.output is not None:
        sys.stdout.write(result.output.rstrip("\n") + "\n")
    if result.error:
        from mamabear.engine.attempt_end import ending_line

        print_error(ending_line(result.run_id, result.status, result.error).rstrip(".") + ".")
        if result.status != Status.COMPLETED:
            console(stderr=True).print(f"[dim]{next_move(ws, result, mission)}[/]")
    sys.stdout.flush()
