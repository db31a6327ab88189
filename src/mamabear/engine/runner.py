"""The run engine: record the attempt, build or restore the crew, kick it off, settle its status.

A run is one id with one or more attempts: the first ``run`` and every ``resume``. Each
attempt restores the crew from the run's last checkpoint (if any), so completed tasks
are never run again, and stops cleanly on a signal, a cancel, its time limit or its budget.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mamabear.config.limits import Limits
from mamabear.config.redact import Redactor
from mamabear.engine.plan import Plan, make_plan
from mamabear.engine.services import Services
from mamabear.engine.tracker import Observer, RunState, TaskState
from mamabear.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, MamabearError, StorageError, UsageError
from mamabear.status import STOPPED
from mamabear.store.database import FINAL_STATUSES, RESUMABLE_STATUSES
from mamabear.store.liveness import running_here, settle_orphans, this_host


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
    chain: list[BaseException] = []
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


def run_options(ws: Services, plan: Plan, limits: Limits) -> dict[str, Any]:
    """What a resume reuses unless told otherwise: never a key."""
    chosen = {
        "model": ws.settings.model,
        "base_url": ws.settings.base_url,
        "sandbox": plan.sandbox.backend if plan.sandbox else None,
        "session": plan.sandbox.session if plan.sandbox else None,
        "no_memory": ws.settings.no_memory,
        "no_cache": ws.settings.no_cache,
    }
    return {k: v for k, v in chosen.items() if v} | limits.to_dict()


def prepare_resume(run_id: str, model: str | None = None, base_url: str | None = None, **limit_flags: float | int | None) -> tuple[Services, Plan, Limits, str]:
    """Check the run can be resumed and re-plan it with its stored options, overridden by the flags given."""
    base = Services()
    store = base.store
    run_id = store.resolve_run_id(run_id)
    run = settle_orphans(store, [store.run(run_id)])[0]
    if running_here(run):
        raise UsageError(f"run {run_id} is still running (pid {run['pid']}); stop it with `mamabear runs cancel {run_id}` first.")
    if run["status"] == "running":
        raise UsageError(f"run {run_id} is marked running on {run['host'] or 'another machine'}; it can only be resumed where it ran.")
    if run["status"] not in RESUMABLE_STATUSES:
        raise UsageError(f"run {run_id} is {run['status']}; only a {', '.join(RESUMABLE_STATUSES)} run can be resumed.")
    options = run["options"] or {}
    # The run keeps its sandbox backend; a run that had a session reattaches to it.
    ws = base.rerouted(
        model=model or options.get("model"),
        base_url=base_url or options.get("base_url"),
        sandbox=options.get("sandbox"),
        session=run["session_id"] or options.get("session"),
        no_memory=options.get("no_memory"),
        no_cache=options.get("no_cache"),
    )
    from mamabear.config.redact import dereferenced

    inputs = {k: dereferenced(v, ws.settings.env, f"input {k} of run {run_id}") if isinstance(v, str) else v for k, v in (run["inputs"] or {}).items()}
    plan = make_plan(ws.catalog, ws.models, run["crew"], inputs, ws.settings, sandbox=ws.sandbox)
    if [t.id for t in plan.tasks] != [t["task"] for t in store.tasks(run_id)]:
        raise UsageError(f"crew '{run['crew']}' has changed since run {run_id} started (its tasks differ); restore its YAML to resume.")
    return ws, plan, Limits.from_dict(options).overridden(**limit_flags), run_id


def _state(store: Any, run_id: str, plan: Plan, attempt: int, started_at: float) -> RunState:
    """The run as the store has it: a resumed run starts with its completed tasks and their usage."""
    rows = {t["position"]: t for t in store.tasks(run_id)}
    tasks = []
    for t in plan.tasks:
        row = rows.get(t.position, {})
        done = row.get("status") == "completed"
        tasks.append(
            TaskState(
                position=t.position,
                task=t.id,
                agent=t.agent,
                model=t.route.model if t.route else None,
                status="completed" if done else "pending",
                output=row.get("output") if done else None,
                started_at=row.get("started_at") if done else None,
                finished_at=row.get("finished_at") if done else None,
                tokens_in=row.get("tokens_in", 0),
                tokens_out=row.get("tokens_out", 0),
                cost_usd=row.get("cost_usd", 0.0),
                llm_calls=row.get("llm_calls", 0),
            )
        )
    return RunState(run_id=run_id, crew=plan.crew.name, tasks=tasks, started_at=started_at, attempt=attempt)


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
    store = ws.store
    started_at = started_at or time.time()
    limits = limits or Limits()
    options = run_options(ws, plan, limits)
    redact = Redactor.for_settings(ws.settings)
    from mamabear.telemetry.targets import targets

    if limits.budget_usd is not None and plan.unpriced:  # a budget that cannot count is no budget
        raise UsageError(
            f"--budget-usd {limits.budget_usd:g} cannot be held: no price is known for {', '.join(plan.unpriced)}; "
            "add it under prices: in config/models.yaml (USD per million tokens, input and output)."
        )
    trace_targets = targets(ws.settings.env)  # a bad OTEL_/LANGFUSE_ setting is an error before the run exists
    cache = ws.response_cache()  # so is an unreachable cache
    if plan.sandbox is not None and plan.sandbox.session:
        ws.sessions().get(plan.sandbox.session)  # an unknown --session is an error now, not at the first tool call
    if not resume:
        if run_id is not None and store.has_run(run_id):
            raise UsageError(f"--run-id {run_id}: a run with that id exists already.")
        run_id = run_id or new_run_id()
        store.create_run(
            run_id,
            plan.crew.name,
            plan.crew.process,
            redact.referenced_data(plan.inputs),
            redact.referenced_data(plan.to_dict()),
            [{"position": t.position, "task": t.id, "agent": t.agent, "model": t.route.model if t.route else None} for t in plan.tasks],
            options,
            created_at=started_at,
            pid=os.getpid(),
            host=this_host(),
        )
    assert run_id is not None
    state = _state(store, run_id, plan, 0, started_at)  # its attempt number comes with the attempt, below

    def phase(activity: str) -> None:  # what the run is doing before its first task: the live view says so
        state.activity = activity
        for observer in observers:
            observer(state, None)

    phase("importing CrewAI")
    # CrewAI is imported only now, so a detached run is in the store within a moment of starting.
    from mamabear.compat.crewai import apply_checkpoint_patches
    from mamabear.compat.httpx import shared_tls
    from mamabear.engine.build import AgentParts, build
    from mamabear.engine.checkpoints import Checkpoints
    from mamabear.engine.stopping import STOP_GRACE_S, Signals, Watchdog
    from mamabear.engine.tracker import Tracker
    from mamabear.llm.guard import Guard
    from mamabear.llm.pricing import Pricer
    from mamabear.llm.resilience import CallControl

    apply_checkpoint_patches()
    checkpoints = Checkpoints(ws.settings.home, run_id, redact)
    restore_from = checkpoints.latest() if resume else None
    attempt = store.start_attempt(
        run_id, "resume" if resume else "run", os.getpid(), this_host(), options, str(restore_from) if restore_from else None, started_at=started_at
    )
    state.attempt = attempt
    spent_usd, spent_tokens = store.spent(run_id)
    guard = Guard(limits, spent_usd, spent_tokens, cancel_requested=lambda: store.cancel_requested(run_id))
    pricer = Pricer(ws.models.prices)
    tracker = Tracker(state, store, pricer, redact, observers)
    tracker.stopping = lambda: guard.stop
    tracker.storage_failed = lambda exc: guard.request_stop("failed", exc.message, exc.exit_code)
    checkpoints.on_failure = lambda message: tracker.event("checkpoint_failed", message, tracker.current)
    tracker.trace = _trace(ws, run_id, plan, attempt, redact, trace_targets, started_at)

    def on_wait(why: str | None, kind: str) -> None:
        state.activity = why or "thinking"
        if why:
            tracker.event(kind, why, tracker.current)
        else:
            tracker.notify(None)

    control = CallControl(
        guard=guard,
        policy=ws.models.retry,
        pricer=pricer,
        on_wait=on_wait,
        cache=cache,
        cache_ttl_s=ws.models.cache.ttl_s,
        on_cache_hit=tracker.cache_hit,
        quotas=ws.quota_book(),
        secret=redact.holds_secret,
    )
    done = sum(t.status == "completed" for t in state.tasks)
    if resume:
        tracker.event(
            "run_resumed",
            f"run {run_id} resumed (attempt {attempt}, {done} of {len(plan.tasks)} tasks done"
            + (
                ", from its last checkpoint)" if restore_from else ", no readable checkpoint: the done tasks' outputs come from the run store)" if done else ")"
            ),
        )
    else:
        tasks = f"{len(plan.tasks)} task" + ("" if len(plan.tasks) == 1 else "s")
        tracker.event("run_started", f"run {run_id} of crew {plan.crew.name} started ({tasks}, {plan.crew.process})")

    link = None
    if plan.sandbox is not None:
        from mamabear.engine.link import SessionLink

        link = SessionLink(
            ws.sessions(),
            plan.sandbox,
            run_id,
            attempt,
            lambda: tracker.current,
            guard,
            note=lambda kind, message: tracker.event(kind, message, tracker.current),
        )
        tracker.after_task.append(link.save)
    attempt_end = _AttemptEnd(store, tracker, guard, attempt, checkpoints, link)

    def on_stop() -> None:  # a stop was asked: the run gets a grace to end by itself, then the process ends it
        if on_abandon is not None:
            attempt_end.abandon_after(STOP_GRACE_S, on_abandon)

    signals = Signals(guard, on_stop)
    watchdog = attempt_end.watchdog = Watchdog(guard, on_stop)
    with signals.installed():
        output: str | None = None
        error: str | None = None
        exit_code = EXIT_OK
        try:
            parts = AgentParts(plan, ws.settings, ws.models, control, link)
            if plan.memory != "off":
                phase("loading the memory model")
                parts.memory = attempt_end.memory = _memory(ws, plan, parts, run_id, tracker)
            phase("restoring the checkpoint" if restore_from is not None else "building the agents")
            with shared_tls():
                if restore_from is not None:
                    built = parts.reattach(checkpoints.restore(restore_from))
                    built.crew.checkpoint = checkpoints.config()
                else:
                    built = build(plan, ws.catalog, parts, checkpoints.config())
                if resume:
                    _with_stored_outputs(built.crew, store.tasks(run_id))
            tracker.attach(built)
            guard.start_clock()
            watchdog.start()
            guard.check()
            result: Any = built.crew.kickoff(inputs=None if restore_from else plan.inputs)
            signals.armed = False
            tracker.detach()
            for position, task_output in enumerate(result.tasks_output, start=1):
                tracker.complete_task(position, task_output.raw)
            output, status = tracker.redact(result.raw), "completed"
            _remember_result(parts.memory, plan, run_id, output, tracker)
        except KeyboardInterrupt:
            status, error, exit_code = "interrupted", "was interrupted", EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported as one sentence
            status = "failed"
            if isinstance(exc, MamabearError):
                error, exit_code = exc.message, exc.exit_code
            else:
                error, exit_code = describe_failure(exc)
                error = tracker.redact(error)
        finally:
            signals.armed = False
        settled = attempt_end.settle(status, error, exit_code, output)
    if settled is None:  # the abandon timer settled it and is exiting the process
        threading.Event().wait()
    assert settled is not None
    return settled


def _with_stored_outputs(crew: Any, rows: list[dict]) -> Any:
    """The resumed crew with every task the store records as completed given its stored output.

    A task is recorded completed a moment before CrewAI's checkpoint of it is on disk; a kill in
    between left the checkpoint one task behind, and the resume ran that task again. With no
    readable checkpoint at all, the crew is built afresh and every completed task is filled in.
    CrewAI starts a resumed crew (one with a kickoff id) at its first task without an output, and
    gives the earlier outputs as context.
    """
    from crewai.tasks.task_output import TaskOutput

    done = {row["position"]: row["output"] for row in rows if row["status"] == "completed" and row["output"] is not None}
    filled = False
    for position, task in enumerate(crew.tasks, start=1):
        if task.output is not None:
            continue
        if position not in done:
            break
        task.output = TaskOutput(
            description=task.description,
            raw=done[position],
            name=task.name,
            expected_output=task.expected_output,
            agent=task.agent.role if task.agent is not None else "",
        )
        filled = True
    if filled:  # a crew built afresh: make CrewAI skip what is done
        from mamabear.compat.crewai import resume_from_first_unfinished

        resume_from_first_unfinished(crew)
    return crew


def _remember_result(memory: Any, plan: Plan, run_id: str, output: str | None, tracker: Any) -> None:
    """A completed run's result is remembered under /run/ID (scope, category and importance given: no model call to file it).

    The crew's work is done by then, so a memory that fails (an embedder out of reach) is noted, not fatal.
    """
    if memory is None or memory.read_only or not output:
        return
    try:
        memory.remember(output[:4000], scope=f"/run/{run_id}", categories=["run_result"], importance=0.6, metadata={"crew": plan.crew.name})
        memory.drain_writes()
    except Exception as exc:  # noqa: BLE001 - any embedder or store failure
        tracker.event("memory_failed", tracker.redact(f"could not remember the run's result: {exc}") or "")


def _trace(ws: Services, run_id: str, plan: Plan, attempt: int, redact: Redactor, remote: list, started_at: float) -> Any:
    """The attempt's span tree (None with OTEL_SDK_DISABLED=true)."""
    from mamabear.telemetry.targets import disabled

    if disabled(ws.settings.env):
        return None
    from mamabear.telemetry.sinks import Sinks
    from mamabear.telemetry.spans import RunTrace

    return RunTrace(Sinks.open(ws.settings.home, run_id, remote), run_id, plan.crew.name, attempt, redact, started_at=started_at)


def _memory(ws: Services, plan: Plan, parts: Any, run_id: str, tracker: Any) -> Any:
    """The crew's view of the shared memory; its analysis calls use the crew's first agent's routed model."""
    from mamabear.memory.shared import make_memory

    workers = [a for a in plan.agents if a is not plan.manager]
    llm = parts.llm(workers[0] if workers else plan.manager)
    llm._mb_role = "memory"  # its calls are the memory's, attributed to memory and the task in hand
    return make_memory(
        ws.settings,
        ws.memory_config,
        llm=llm,
        crew=plan.crew.name,
        mode=plan.memory,
        run_id=run_id,
        note=lambda kind, message, data: tracker.event(kind, message, tracker.current, data=data),
        warm=True,
    )


MEMORY_DRAIN_S = 10.0  # the longest a run's end waits for memories still being saved (a stopped run's calls stop at once)


class _AttemptEnd:
    """Records how an attempt ended, exactly once: from the normal path, or from the abandon timer.

    CrewAI runs each model call in a worker thread while the main thread waits in asyncio,
    so Ctrl-C cannot unwind a call in flight; after a short grace the timer records the
    stop (the checkpoint of the last completed task is already on disk) and exits.
    """

    def __init__(self, store: Any, tracker: Any, guard: Any, attempt: int, checkpoints: Any, link: Any = None) -> None:
        self.store, self.tracker, self.guard, self.attempt, self.checkpoints = store, tracker, guard, attempt, checkpoints
        self.link = link
        self.memory: Any = None  # the run's shared memory: what it is still saving is waited for, however the run ends
        self.watchdog: Any = None
        self._lock = threading.Lock()
        self._done = False
        self._abandoning = False

    def settle(self, status: str, error: str | None, exit_code: int, output: str | None, drain_s: float = MEMORY_DRAIN_S) -> RunResult | None:
        with self._lock:
            if self._done:
                return None
            self._done = True
            if self.watchdog is not None:
                self.watchdog.end()
            tracker, state, run_id = self.tracker, self.tracker.state, self.tracker.state.run_id
            _drain(self.memory, drain_s)  # CrewAI saves memories on a background thread; the process exits hard
            tracker.detach()  # also waits for the last checkpoint write
            if self.link is not None:
                self.link.close()  # bill the sandbox time; an unpooled cloud session is paused
            if self.guard.stop is not None:
                status, error, exit_code = self.guard.stop.status, self.guard.stop.reason, self.guard.stop.exit_code
                if status == "interrupted" and self.store.cancel_requested(run_id):
                    status, error = "cancelled", "was cancelled"
            try:
                task = _settle_running_task(tracker, status, error)
                if status == "failed" and task is not None:
                    error = f"task {task.position} {task.task} failed: {error}"
                state.status, state.activity, state.finished_at = status, status, time.time()
                self.store.finish_attempt(run_id, self.attempt, status, error, output)
            except StorageError as exc:  # not recorded: the next command finds its process gone and records it interrupted
                if exc.message not in (error or ""):
                    error = exc.message if error is None else f"{error}; {exc.message}"
                exit_code = exit_code or exc.exit_code
            if tracker.trace is not None:
                for problem in tracker.trace.finish(
                    status,
                    error,
                    {
                        "gen_ai.usage.input_tokens": state.tokens_in,
                        "gen_ai.usage.output_tokens": state.tokens_out,
                        "mamabear.cost_usd": round(state.cost_usd, 8),
                    },
                ):
                    tracker.event("trace_export_failed", f"warning: {problem}")
            if status == "completed":
                self.checkpoints.discard()  # a completed run is never resumed
            tracker.event("run_finished", f"{ending_line(run_id, status, error)} ({_summary(state)})", data={"status": status})
            assert status in FINAL_STATUSES
            return RunResult(run_id, status, output, error, state, exit_code)

    def abandon_after(self, seconds: float, on_abandon: Any) -> None:
        """Unless the run has ended ``seconds`` from now, settle it from here, render it and exit the process.

        Whatever fails or blocks here (the store, a memory save, the renderer), the process exits
        at most EXIT_CAP_S later: the main thread may be stuck in CrewAI or a tool.
        """
        with self._lock:
            if self._abandoning:
                return
            self._abandoning = True

        from mamabear.engine.stopping import EXIT_CAP_S, STOPPED_DRAIN_S

        def abandon() -> None:
            if self._done:
                return  # the run ended by itself meanwhile; its own path reports it
            stop = self.guard.stop
            cap = threading.Timer(EXIT_CAP_S, os._exit, (stop.exit_code if stop is not None else EXIT_INTERRUPTED,))
            cap.daemon = True
            cap.start()
            try:
                result = self.settle("interrupted", "was interrupted", EXIT_INTERRUPTED, None, drain_s=STOPPED_DRAIN_S)
            except BaseException:  # noqa: BLE001
                os._exit(stop.exit_code if stop is not None else EXIT_INTERRUPTED)
            if result is None:
                return  # the main thread is settling it: its own path reports it (the cap still holds)
            try:
                if on_abandon is not None:
                    on_abandon(result)
            finally:
                os._exit(result.exit_code)

        timer = threading.Timer(seconds, abandon)
        timer.daemon = True
        timer.start()


def _drain(memory: Any, seconds: float) -> None:
    """Wait for the memory's pending saves, at most ``seconds`` (a save stuck in a model call must not hold the exit)."""
    if memory is None:
        return

    def drain() -> None:
        try:
            memory.drain_writes()
        except Exception:  # noqa: BLE001 - a failed save is the memory's own business (it logs it); the run's end goes on
            pass

    waiter = threading.Thread(target=drain, name="mamabear-memory-drain", daemon=True)
    waiter.start()
    waiter.join(seconds)


def ending_line(run_id: str, status: str, error: str | None) -> str:
    """How a run ended, as a sentence: "run X completed", "run X failed: task 2 ...", "run X was cancelled"."""
    if not error:
        return f"run {run_id} {status}"
    if status in STOPPED:  # the reason reads as a sentence of its own: "reached its time limit of 2m00s"
        return f"run {run_id} {error}"
    return f"run {run_id} {status}: {error}"


def _summary(state: RunState) -> str:
    from mamabear.config.durations import fmt_seconds

    calls = f"{state.llm_calls} model call" + ("" if state.llm_calls == 1 else "s")
    line = f"{fmt_seconds(state.seconds)}, {calls}, {state.tokens_in:,}+{state.tokens_out:,} tokens, ${state.cost_usd:.4f}"
    if state.cache_hits:
        line += f"; {state.cache_hits} answered from the cache, ${state.saved_usd:.4f} saved"
    return line


def _settle_running_task(tracker: Any, status: str, error: str | None) -> TaskState | None:
    """The task that was running when the run ended: failed with the error, or stopped (it reruns on resume)."""
    task = tracker.state.task(tracker.current)
    if task is None or task.status == "completed":
        return None
    task.status = "failed" if status == "failed" else status
    task.finished_at = task.finished_at or time.time()
    task.error = error if status == "failed" else None
    tracker.store.update_task(tracker.state.run_id, task.position, status=task.status, error=task.error, finished_at=task.finished_at)
    return task
