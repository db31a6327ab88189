"""One attempt of a run (the first ``run`` or a ``resume``): recorded, built whole, kicked off, settled.

``Attempt(...)`` checks what can be checked before a run exists and records the run (a
detached run is in the store within a moment); ``start()`` imports CrewAI and wires the
attempt's parts (guard, pricer, tracker, call control, checkpoints, sandbox link, its end);
``run()`` builds or restores the crew, kicks it off under the signal handlers and the
watchdog, and settles its status. Each attempt restores the crew from the run's last
checkpoint (or the store's completed outputs), so completed tasks are never run again.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mamabear.config.limits import Limits
from mamabear.config.redact import Redactor
from mamabear.engine.attempt_end import AttemptEnd, RunResult
from mamabear.engine.plan import Plan
from mamabear.engine.services import Services
from mamabear.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, MamabearError, UsageError
from mamabear.observe import RunObserver, RunState, TaskState
from mamabear.status import Status
from mamabear.store.liveness import this_host

if TYPE_CHECKING:
    from mamabear.engine.context import RunContext, Work
    from mamabear.llm.tape import Tape


@dataclass(frozen=True)
class StepOf:
    """The one step an attempt carries out for the attempt that holds its run (a mission's step sent to a worker)."""

    position: int
    attempt: int  # the holding attempt's number, which sent it: the step is its, and beats only while it holds the run


class Attempt:
    def __init__(
        self,
        ws: Services,
        plan: Plan,
        observers: list[RunObserver],
        limits: Limits | None = None,
        run_id: str | None = None,
        resume: bool = False,
        on_abandon: Callable[[RunResult], None] | None = None,
        started_at: float | None = None,
        work: Work | None = None,
        step: StepOf | None = None,
        tape: Tape | None = None,
        tags: dict | None = None,
    ) -> None:
        """Check the attempt can start and record its run (a first attempt). ``observers``: who follows the run
        besides the store and the tracer (a progress view); ``on_abandon(result)`` renders the result when a stop
        must exit the process early; ``started_at`` is when the command started. ``step``: the one step this attempt
        carries out for the attempt that holds the run (a mission's step sent to another worker): it claims nothing,
        beats on the step's row, and settles only that row. ``tape``: a recording shared by several
        attempts (an eval's runs), instead of the settings' --record/--replay; ``tags``: kept in the run's options (the
        eval and case a run belongs to)."""
        from mamabear.telemetry.targets import targets

        self.ws, self.plan, self.observers, self.resume, self.on_abandon = ws, plan, observers, resume, on_abandon
        self.work = work  # what the attempt runs instead of the plan's crew: ``work.kickoff(RunContext)`` (a mission)
        self.step = step
        self.store = ws.store
        self.started_at = started_at or time.time()
        self.limits = limits or Limits()
        self.options = {**run_options(ws, plan, self.limits), **(tags or {})}
        self.redact = Redactor.for_settings(ws.settings)
        if self.limits.budget_usd is not None and plan.unpriced:  # a budget that cannot count is no budget
            raise UsageError(
                f"--budget-usd {self.limits.budget_usd:g} cannot be held: no price is known for {', '.join(plan.unpriced)}; "
                "add it under prices: in config/models.yaml (USD per million tokens, input and output)."
            )
        self.trace_targets = targets(ws.settings.env)  # a bad OTEL_/LANGFUSE_ setting is an error before the run exists
        from mamabear.llm.tape import Tape

        self.tape = tape or Tape.for_flags(ws.settings.record, ws.settings.replay, self.redact)  # so is a recording that cannot be read
        # And an unreachable cache; a recording has none (each request is asked and kept), nor has a replay (its file answers).
        self.cache = None if self.tape is not None else ws.response_cache()
        self.quotas = ws.quota_book()
        if self.quotas is not None:
            self.quotas.check()  # and quota buckets in a Redis that is down
        if plan.sandbox is not None and plan.sandbox.session:
            ws.sessions().get(plan.sandbox.session)  # an unknown --session is an error now, not at the first tool call
        if not resume:
            run_id = self._record_run(run_id)
        assert run_id is not None
        self.run_id = run_id
        self.expected: str | None = None  # the status a resume saw: the run is claimed only if it still has it
        self.first = True  # the run's first attempt (a queued run's first start is its run, not a resume)
        if resume:
            seen = self.store.run(run_id)
            self.expected, self.first = str(seen.status), not seen.attempt and step is None
            if (queue := (seen.options or {}).get("queue")) and ws.settings.env.get("MAMABEAR_WORKER"):
                self.options["queue"] = queue  # a worker's run stays queued: if its worker is lost, it is queued again
            if (max_steps := (seen.options or {}).get("max_steps")) is not None:
                self.options["max_steps"] = max_steps  # a queued mission's step limit, for a later attempt too
        self.state = _state(self.store, run_id, plan, 0, self.started_at)  # its attempt number comes with start()
        if step is not None and (task := self.state.task(step.position)) is not None:
            task.status, task.finished_at = Status.PENDING, None  # claimed for this attempt, which starts it now

    def _record_run(self, run_id: str | None) -> str:
        if run_id is not None and self.store.has_run(run_id):
            raise UsageError(f"--run-id {run_id}: a run with that id exists already.")
        return record_run(self.store, self.plan, self.options, self.redact, run_id or new_run_id(), self.started_at, os.getpid(), this_host())

    def phase(self, activity: str) -> None:
        """What the run is doing before its first task: the live view says so."""
        self.state.activity = activity
        for observer in self.observers:
            observer.changed(self.state)

    def start(self) -> None:
        """Import CrewAI and wire the attempt's parts; the attempt is recorded in the store."""
        self.phase("importing CrewAI")
        # CrewAI is imported only now, so a detached run is in the store within a moment of starting.
        from mamabear.compat.crewai import apply_checkpoint_patches, apply_conversion_patch, apply_mcp_warning_patch
        from mamabear.engine.checkpoints import Checkpoints
        from mamabear.engine.stopping import STOP_GRACE_S, Heartbeat, Signals, Watchdog
        from mamabear.engine.tracker import Tracker
        from mamabear.llm.guard import Guard
        from mamabear.llm.pricing import Pricer
        from mamabear.llm.resilience import CallControl
        from mamabear.store.writer import StoreWriter

        ws, plan, store, run_id, state = self.ws, self.plan, self.store, self.run_id, self.state
        apply_checkpoint_patches()
        apply_conversion_patch()
        apply_mcp_warning_patch()
        self.checkpoints = checkpoints = Checkpoints(ws.settings.home, run_id, self.redact, store=store)
        # A CrewAI project's crew is built again on resume (a checkpoint cannot hold its Python tools); the tasks done
        # get their stored outputs, so none is asked again.
        self.restore_from = checkpoints.latest() if self.resume and not plan.crew.built_by_project and self.step is None else None
        self.worker = ws.settings.env.get("MAMABEAR_WORKER") or None
        self.number = attempt = self._claim()
        state.attempt = attempt
        spent_usd, spent_tokens = store.spent(run_id)
        self.guard = guard = Guard(self.limits, spent_usd, spent_tokens, cancel_requested=lambda: store.cancel_requested(run_id))

        def lost() -> None:
            why = "lost the run: its heartbeat was missed and the run was handed to another process"
            if self.step is not None:
                why = "stopped: the attempt that sent this step out has ended or was handed on"
            guard.request_stop(Status.INTERRUPTED, why)
            on_stop()

        step, worker = self.step, self.worker or ""

        def beat_step() -> bool:  # a step's beat also learns what the run's other steps have spent: one budget
            assert step is not None
            if not store.beat_step(run_id, step.position, worker, attempt):
                return False
            guard.spent_is(*store.spent(run_id))
            return True

        self.heartbeat = Heartbeat(lambda: store.beat(run_id, attempt), lost) if step is None else Heartbeat(beat_step, lost)
        pricer = Pricer.for_run(ws.models, ws.settings)
        self.trace = None if self.step is not None else _trace(ws, run_id, plan, attempt, self.redact, self.trace_targets, self.started_at)
        observers = [StoreWriter(store, run_id, attempt), *([self.trace] if self.trace is not None else []), *self.observers]
        if isinstance(self.work, RunObserver):  # a mission follows its own steps (their tool calls)
            observers.append(self.work)
        self.tracker = tracker = Tracker(state, pricer, self.redact, observers, guard)
        checkpoints.events = tracker
        self.control = CallControl(
            guard=guard,
            policy=ws.models.retry,
            pricer=pricer,
            events=tracker,
            cache=self.cache,
            cache_ttl_s=ws.models.cache.ttl_s,
            quotas=self.quotas,
            secret=self.redact.holds_secret,
            tape=self.tape,
            images_keep=ws.sandbox.screen.keep,
            sees=ws.models.takes_images,
            images_root=ws.settings.home / "sandboxes",
            run_id=run_id,
            env=ws.settings.env,
        )
        self._announce()
        self.link = None
        if plan.sandbox is not None:
            from mamabear.engine.link import SessionLink

            self.link = SessionLink(ws.sessions(), plan.sandbox, run_id, attempt, tracker, guard, borrowed=self.step is not None)
            tracker.after_task.append(self.link.save)
        self.end = end = AttemptEnd(store, tracker, guard, attempt, checkpoints, self.link, self.trace, whole_run=self.step is None)

        def on_stop() -> None:  # a stop was asked: the run gets a grace to end by itself, then the process ends it
            if self.on_abandon is not None or self.step is not None:
                self.end.abandon_after(STOP_GRACE_S, self.on_abandon)

        self.signals = Signals(guard, on_stop)
        self.watchdog = end.watchdog = Watchdog(guard, on_stop)

    def _claim(self) -> int:
        """The attempt's number: a new attempt that owns the run, or, for a step, the attempt that sent it out."""
        store, run_id = self.store, self.run_id
        if self.step is not None:
            return self.step.attempt
        return store.start_attempt(
            run_id,
            "run" if self.first else "resume",
            os.getpid(),
            this_host(),
            self.options,
            str(self.restore_from) if self.restore_from else None,
            started_at=self.started_at,
            worker=self.worker,
            expected=self.expected,
        )

    def _announce(self) -> None:
        plan, run_id, tracker = self.plan, self.run_id, self.tracker
        on = f" on worker {self.worker}" if self.worker else ""
        if self.step is not None:
            position = self.step.position
            step = self.state.task(position)
            tracker.event("step_started", f"step {position} ({step.task if step else '?'}) of run {run_id} started{on}", position)
        elif self.resume and not self.first:
            done = sum(t.status == Status.COMPLETED for t in self.state.tasks)
            source = (
                ", from its last checkpoint)"
                if self.restore_from
                else ", no readable checkpoint: the done tasks' outputs come from the run store)"
                if done
                else ")"
            )
            of = f"{done} of {len(plan.tasks)} tasks" if plan.tasks else f"{done} step" + ("" if done == 1 else "s")  # a mission's steps come as it goes
            tracker.event("run_resumed", f"run {run_id} resumed{on} (attempt {self.number}, {of} done" + source)
        elif self.work is not None:
            tracker.event("run_started", f"run {run_id} started{on}: {self.work}")
        else:
            tasks = f"{len(plan.tasks)} task" + ("" if len(plan.tasks) == 1 else "s")
            tracker.event("run_started", f"run {run_id} of crew {plan.crew.name} started{on} ({tasks}, {plan.crew.process})")

    def run(self) -> RunResult:
        """Build or restore the crew, kick it off, and settle how the attempt ended."""
        self.start()
        self.heartbeat.start()  # from now until the attempt settles, building the crew included
        with self.signals.installed():
            output: str | None = None
            error: str | None = None
            exit_code = EXIT_OK
            try:
                output = self._kickoff()
                status = Status.COMPLETED
            except KeyboardInterrupt:
                status, error, exit_code = Status.INTERRUPTED, "was interrupted", EXIT_INTERRUPTED
            except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported as one sentence
                status = getattr(exc, "status", Status.FAILED)  # a mission that is stuck says so
                if isinstance(exc, MamabearError):
                    error, exit_code = exc.message, exc.exit_code
                else:
                    error, exit_code = describe_failure(exc)
                    error = self.tracker.redact(error)
            finally:
                self.signals.armed = False
                self.heartbeat.end()
            settled = self.end.settle(status, error, exit_code, output)
        if settled is None:  # the abandon timer settled it and is exiting the process
            threading.Event().wait()
        assert settled is not None
        return settled

    def _answers(self) -> Any:
        """--answers: a task that asks for feedback takes it from the file, and each round is an event of the run."""
        from contextlib import nullcontext

        from mamabear.compat.crewai import human_input_answers

        answers = self.plan.answers
        if answers is None:
            return nullcontext()
        positions = {t.id: t.position for t in self.plan.tasks}

        def answer(task: str) -> str:
            feedback = answers.next(task)
            said = f"feedback for task {task} from --answers: {feedback}" if feedback else f"task {task}'s answer accepted (--answers)"
            self.tracker.event("feedback_given", said, positions.get(task), data={"task": task, "feedback": feedback})
            return feedback

        return human_input_answers(answer)

    def _kickoff(self) -> str | None:
        from mamabear.compat.httpx import shared_tls
        from mamabear.engine.build import AgentParts, build, build_project
        from mamabear.engine.project import as_built
        from mamabear.engine.resume import with_stored_outputs

        ws, plan, tracker, checkpoints, guard = self.ws, self.plan, self.tracker, self.checkpoints, self.guard
        if ws.settings.base_url and not ws.settings.replay and self.step is None:  # one models list, 2 s at most
            from mamabear.llm.probe import unlisted

            for line in unlisted([a.route for a in plan.agents if a.route is not None], ws.settings):
                tracker.event("model_not_listed", f"warning: {line}")
        parts = AgentParts(plan, ws.settings, ws.models, self.control, self.link, ws.roots)
        if plan.memory != "off":
            self.phase("loading the memory model")
            parts.memory = self.end.memory = _memory(ws, plan, parts, self.run_id, tracker, self.tape)
        if self.work is not None:
            from mamabear.engine.context import RunContext

            guard.start_clock(self.started_at)
            self.watchdog.start()
            ctx = RunContext(self.run_id, self.number, plan, self.state, self.store, guard, tracker, parts, self.control, self.link)
            return self.work.kickoff(ctx)
        self.phase("restoring the checkpoint" if self.restore_from is not None else "building the agents")
        with shared_tls():
            if self.restore_from is not None:
                built = parts.reattach(checkpoints.restore(self.restore_from, ws.settings.env), ws.catalog)
                built.crew.checkpoint = checkpoints.config()
            elif plan.crew.built_by_project and (project := plan.project or as_built(plan.crew, ws.catalog)) is not None:
                built = build_project(replace(plan, project=project), parts, checkpoints.config())  # a crew.jsonc is built now
            else:
                built = build(plan, ws.catalog, parts, checkpoints.config())
            if self.resume:
                with_stored_outputs(built.crew, self.store.tasks(self.run_id), ws.settings.env)
        tracker.attach(built)
        guard.start_clock(self.started_at)
        self.watchdog.start()
        guard.check()
        with self._answers():
            result: Any = built.crew.kickoff(inputs=None if self.restore_from else plan.inputs)
        self.signals.armed = False
        tracker.detach()
        for position, task_output in enumerate(result.tasks_output, start=1):
            tracker.complete_task(position, task_output.raw)
        output = tracker.redact(result.raw)
        _remember_result(parts.memory, plan, self.run_id, output, tracker)
        return output


def add_step(ctx: RunContext, task: str, agent: str | None, model: str | None) -> TaskState:
    """A task decided while the run goes (a mission's step): in the run's state and the store, pending."""
    state = ctx.state
    step = TaskState(position=len(state.tasks) + 1, task=task, agent=agent, model=model)
    ctx.store.add_task(ctx.run_id, step.position, task, agent, model)
    state.tasks.append(step)
    return step


def record_run(
    store: Any, plan: Plan, options: dict, redact: Any, run_id: str, created_at: float, pid: int | None, host: str | None, status: Status = Status.RUNNING
) -> str:
    """The run's row and its tasks' rows, before anything else of it happens (its inputs and plan redacted)."""
    store.create_run(
        run_id,
        plan.crew.name,
        plan.crew.process,
        redact.referenced_data(plan.inputs),
        redact.referenced_data(plan.to_dict()),
        [{"position": t.position, "task": t.id, "agent": t.agent, "model": t.route.model if t.route else None} for t in plan.tasks],
        options,
        created_at=created_at,
        pid=pid,
        host=host,
        status=status,
    )
    return run_id


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
    from mamabear.llm.wire import refusal

    refused = refusal(exc)
    if refused is not None:
        return f"{refused}; mamabear doctor probes what the server takes.", EXIT_FAILED
    message = next((str(e) for e in chain if str(e)), type(exc).__name__).strip().splitlines()[0]
    if "MCPConnectionError" in names or any(_raised_in_mcp(e) for e in chain):  # CrewAI's MCP client also raises plain ConnectionErrors
        return f"an MCP server could not be started or reached ({message}); check its entry under mcp_servers in config/tools.yaml.", EXIT_USAGE
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "ConnectTimeout"}:
        return f"cannot reach the model provider ({message}); check --base-url or your network.", EXIT_USAGE
    if names & {"AuthenticationError", "PermissionDeniedError"}:
        return f"the model provider refused the API key ({message}); check the key's environment variable.", EXIT_USAGE
    if "NotFoundError" in names:
        return f"the model provider does not know the model ({message}); check --model or config/models.yaml.", EXIT_USAGE
    return message, EXIT_FAILED


def _raised_in_mcp(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the code of an MCP client (CrewAI's, or the mcp SDK's), not by a model call."""
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(("crewai.mcp", "mcp.")):
            return True
        tb = tb.tb_next
    return False


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


def _state(store: Any, run_id: str, plan: Plan, attempt: int, started_at: float) -> RunState:
    """The run as the store has it: a resumed run starts with its completed tasks and their usage."""
    rows = {t.position: t for t in store.tasks(run_id)}
    planned = [(t.position, t.id, t.agent, t.route.model if t.route else None) for t in plan.tasks]
    planned += [(r.position, r.task, r.agent, r.model) for r in rows.values() if r.position > len(plan.tasks)]  # steps decided as it went
    tasks = []
    for position, task, agent, model in planned:
        state = TaskState(position=position, task=task, agent=agent, model=model)
        row = rows.get(position)
        if row is not None:
            state.tokens_in, state.tokens_out, state.cost_usd, state.llm_calls = row.tokens_in, row.tokens_out, row.cost_usd, row.llm_calls
            state.unpriced_calls = row.unpriced_calls
            if row.status == Status.COMPLETED:
                state.status, state.output, state.started_at, state.finished_at = Status.COMPLETED, row.output, row.started_at, row.finished_at
            elif position > len(plan.tasks):  # a step cut short: it is not run again as such (its action is, as a new step)
                state.status, state.finished_at = row.status, row.finished_at
        tasks.append(state)
    return RunState(run_id=run_id, crew=plan.crew.name, tasks=tasks, started_at=started_at, attempt=attempt, process=plan.crew.process)


def _remember_result(memory: Any, plan: Plan, run_id: str, output: str | None, tracker: Any) -> None:
    """A completed run's result is remembered under /run/ID."""
    remember(memory, output, f"/run/{run_id}", "run_result", {"crew": plan.crew.name}, tracker)


def remember(memory: Any, text: str | None, scope: str, category: str, metadata: dict[str, Any], tracker: Any) -> None:
    """``text`` remembered (scope, category and importance given: no model call to file it), such as a run's result or
    a mission item's checked result.

    The work is done by then, so a memory that fails (an embedder out of reach) is noted, not fatal, and one
    that is stuck (its save pool behind a save that hangs) is not waited for longer than its ``save_wait_s``.
    """
    if memory is None or memory.read_only or not text:
        return
    failed: list[Exception] = []

    def save() -> None:
        try:
            memory.remember(text[:4000], scope=scope, categories=[category], importance=0.6, metadata=metadata)
            memory.drain_writes()
        except Exception as exc:  # noqa: BLE001 - any embedder or store failure
            failed.append(exc)

    saver = threading.Thread(target=save, name="mamabear-remember", daemon=True)
    saver.start()
    saver.join(getattr(memory, "save_wait_s", None))
    if failed:
        tracker.event("memory_failed", tracker.redact(f"could not remember the {category.replace('_', ' ')}: {failed[0]}") or "")
    elif saver.is_alive():
        tracker.event("memory_failed", f"warning: the {category.replace('_', ' ')} is still being saved to memory; not waited for")


def _trace(ws: Services, run_id: str, plan: Plan, attempt: int, redact: Redactor, remote: list, started_at: float) -> Any:
    """The attempt's span tree (None with OTEL_SDK_DISABLED=true)."""
    from mamabear.telemetry.targets import disabled

    if disabled(ws.settings.env):
        return None
    from mamabear.telemetry.sinks import Sinks
    from mamabear.telemetry.spans import RunTrace

    return RunTrace(Sinks.open(ws.settings.home, run_id, remote), run_id, plan.crew.name, attempt, redact, started_at=started_at)


def _memory(ws: Services, plan: Plan, parts: Any, run_id: str, tracker: Any, tape: Any) -> Any:
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
        events=tracker,
        warm=True,
        project=ws.settings.project_dir.name if plan.crew.scope > 0 and ws.settings.project_dir else None,  # a project's own crew
        tape=tape,
    )
