"""A mission carried out on the run engine: each action of its course is one small crew (one task, one specialist).

``Mission.kickoff`` is the attempt's work (``engine.attempt.Attempt(work=...)``, given the run's ``RunContext``): the attempt has
recorded the run and wired its guard, tracker, sandbox link, memory and stops; each step is a
task row of the run, tracked like a crew's task, and after each step the course is saved with
the run's events (``mission_state``), so the store has every plan version and verdict.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mamabear.engine.context import RunContext
from mamabear.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_STUCK, MamabearError, UsageError
from mamabear.mission import prompts
from mamabear.mission.checks import failure, run_checks
from mamabear.mission.config import MissionConfig
from mamabear.mission.course import Confirm, Course, Finish, MakePlan, Replan, RunItem
from mamabear.mission.fanout import Pool, Sent, carry_out
from mamabear.mission.plan import MissionPlan, PlanError, Verdict, contract, markdown, problems, read, repaired
from mamabear.mission.report import FILES_SHOWN
from mamabear.mission.state import CourseState, MissionState
from mamabear.mission.step import SENT, STOPPED, Answer, run_step
from mamabear.mission.stuck import Call, loop, observed, over_budget
from mamabear.observe import RunObserver, ToolUse
from mamabear.sandbox.backend import CommandResult
from mamabear.status import Status

if TYPE_CHECKING:
    from mamabear.config.catalog import Catalog
    from mamabear.store.database import Store

TEAM = (
    "research_specialist",
    "devops_specialist",
    "scout_commander",
    "model_coordinator",
    "tool_curator",
    "integration_architect",
    "live_api_specialist",
)


class MissionEnded(MamabearError):
    """The mission ended without meeting its goal: the run ends ``failed`` (exit 1), ``stuck`` (exit 5) or ``cancelled``
    at the plan's review (exit 130), with this sentence."""

    EXIT_CODES = {Status.FAILED: EXIT_FAILED, Status.STUCK: EXIT_STUCK, Status.CANCELLED: EXIT_INTERRUPTED}

    def __init__(self, message: str, status: Status = Status.FAILED) -> None:
        super().__init__(message)
        self.status = status
        self.exit_code = self.EXIT_CODES[status]


Review = Callable[[MissionPlan, Callable[[MissionPlan], list[str]]], "MissionPlan | None"]


class Mission(RunObserver):
    """The mission's work, and an observer of its run: it follows the tool calls of the try in hand (a loop, its budget)."""

    def __init__(
        self, goal: str, config: MissionConfig, catalog: Catalog, review: Review | None = None, pool: Pool | None = None, review_first_only: bool = False
    ) -> None:
        """``review``: shown each plan version (only the first with ``review_first_only``), it answers with the plan to
        carry out (edited or not), or None to abort. ``pool``: on a worker pool, where independent items go to run at
        once (fanout.py)."""
        self.goal, self.config, self.catalog, self.review, self.pool = goal, config, catalog, review, pool
        self.review_first_only = review_first_only
        self.carried_on: tuple[str, str] | None = None  # resumed after it ended by itself: (how it ended, why)
        self.course = Course(goal, config)
        self.calls: list[Call] = []  # the tool calls of the step in hand, in order
        self.results: dict[str, str] = {}  # item id -> what its specialist said it did
        self.evidence: dict[str, str] = {}  # item id -> its verdicts, one line each

    def __str__(self) -> str:
        return f"mission: {self.goal}"

    # ------------------------------------------------------------ the loop

    def kickoff(self, ctx: RunContext) -> str:
        self.ctx = ctx
        team = [prompts.Specialist(a.id, a.role, self.catalog.agent(a.id).goal) for a in ctx.plan.agents]
        if self.carried_on is not None:
            status, reason = self.carried_on
            limit = self.config.max_steps
            said = f"mission carried on after it ended {status} ({reason}): the items done stay done, "
            said += f"the others' tries and the re-plans start afresh, up to step {limit}"
            self.note("mission_continued", said, {"ended": status, "reason": reason, "max_steps": limit})
            ctx.control.own_answers_stale = True  # its earlier answers are the ones that did not do: the model is asked
        if self.course.plan is not None:  # resumed: the live view learns the plan it carries on with
            data = {"plan": self.course.plan.model_dump(), "version": self.course.version, "course": self._course_state().model_dump(mode="json")}
            self.note("mission_resumed", f"mission resumed after step {self.course.steps} on plan v{self.course.version}", data)
        while True:
            ctx.guard.check()
            action = self.course.next()
            if isinstance(action, Finish):
                return self._finish(action)
            if isinstance(action, MakePlan):
                self._plan(*prompts.plan_task(self.goal, team, action.problems))
            elif isinstance(action, Replan):
                assert self.course.plan is not None
                self._plan(*prompts.replan_task(self.goal, team, self.course.plan, self.results, action.reason))
            elif isinstance(action, RunItem):
                batch = self.course.ready(self.config.parallel_items) if self.pool is not None else [action]
                if self.pool is not None and len(batch) > 1:
                    if self.ctx.link is not None:
                        self.ctx.link.session(self.config.planner)  # the steps sent out work in the run's session
                    carry_out(self, self.pool, [self.add_item_step(a, sent=True) for a in batch])
                else:
                    self.fold_here(self.add_item_step(action))
            elif isinstance(action, Confirm):
                verdict = self._verdict("confirm the goal", self.config.planner, prompts.confirm_task(self.goal, self.evidence))
                self.course.confirmation(verdict.passed, verdict.reason)
            if not isinstance(action, RunItem):  # an item's step is saved as it is folded in
                self._save()

    def _finish(self, action: Finish) -> str:
        self.note("mission_finished", f"mission {action.status}: {action.reason}", {"status": action.status, "reason": action.reason, "files": self._files()})
        if action.status == "stuck":
            raise MissionEnded(action.reason, Status.STUCK)
        if action.status != "completed":
            raise MissionEnded(f"the mission failed: {action.reason}")
        done = "\n".join(f"- {item_id}:\n" + "".join(f"    {line}\n" for line in text.splitlines()) for item_id, text in self.evidence.items())
        return f"Goal: {self.goal}\nMet: {action.reason}.\n\nEvidence:\n{done}"

    def _plan(self, description: str, expected: str) -> None:
        team = [a.id for a in self.ctx.plan.agents]
        answer = self._step(f"plan v{self.course.version + 1}", self.config.planner, description, expected, output=contract(team))
        try:
            plan = read(answer.text)
        except PlanError as exc:
            self.course.unusable_answer(str(exc) if answer.text else answer.unfit or str(exc))
            self.note("mission_plan_unusable", f"the plan could not be used: {exc}")
            return
        done = self.course.done()
        found = problems(plan, set(team), done)
        if found and self.course.last_plan_answer():  # told once; now what is unambiguous to drop is dropped
            plan, dropped = repaired(plan, done)
            if dropped:
                self.note("mission_plan_repaired", "the plan was repaired: " + "; ".join(dropped), {"repairs": dropped})
                found = problems(plan, set(team), done)
        self.course.planned(plan, found)
        if found:
            self.note("mission_plan_unusable", "the plan could not be used: " + "; ".join(found))
            return
        if self.review is not None and (self.course.version == 1 or not self.review_first_only):
            self._reviewed(plan)
        else:
            self._announce(plan)

    def _announce(self, plan: MissionPlan, edited: bool = False) -> None:
        count = f"{len(plan.items)} item" + ("" if len(plan.items) == 1 else "s")
        what = f"plan v{self.course.version}" + (" (edited at the review)" if edited else "")
        data = {"plan": plan.model_dump(), "version": self.course.version, "edited": edited}
        self.note("mission_plan", f"{what}: {count} ({', '.join(i.id for i in plan.items)})", data)
        self._write("PLAN.md", markdown(self.goal, plan, self._states(), self.course.version, self.course.done()))

    def _reviewed(self, plan: MissionPlan) -> MissionPlan:
        """A plan version (each, or the first only) as the person at the terminal let it go: as it is, edited (a new
        version), or not at all."""
        assert self.review is not None
        specialists = {a.id for a in self.ctx.plan.agents}
        self._announce(plan)
        with self.ctx.guard.held():  # a person reads and edits: the time limit waits
            answer = self.review(plan, lambda edited: problems(edited, specialists, self.course.done()))
        if answer is None:
            self.note("mission_aborted", "the plan was aborted at its review")
            raise MissionEnded("was cancelled at its plan review", Status.CANCELLED)
        if answer != plan:
            self.course.revised(answer)
            self._announce(answer, edited=True)
        return answer

    def add_item_step(self, action: RunItem, sent: bool = False) -> Sent:
        """The step row of an item's try; ``sent``: what it asks is recorded for a worker that takes it."""
        item = action.item
        data = {"item": item.id, "try": action.attempt}
        self.note("mission_item_started", f"item {item.id}: try {action.attempt}, {item.specialist}: {item.title}", {**data, "specialist": item.specialist})
        description, expected = prompts.item_task(item, self.results, action.feedback)
        step = self._add_step(f"{item.id} (try {action.attempt})", item.specialist)
        if sent:
            referenced = self.ctx.tracker.redact.referenced  # the worker puts a secret back from its environment
            spec = {**data, "agent": item.specialist, "description": referenced(description), "expected": expected, "max_iter": self._max_iter()}
            self.note(SENT, f"step {step.position} ({step.task}) sent to the worker pool", spec, step.position)
        return Sent(action, step.position, description, expected)

    def fold_here(self, sent: Sent) -> None:
        """Carry out an item's try in this attempt (its tool calls followed: a loop or its budget stops it), then fold
        it into the course."""
        self.calls.clear()
        self.ctx.guard.try_rule = self._try_over  # set only while an item's try is in hand here
        try:
            item = sent.action.item
            answer = run_step(self.ctx, self.catalog, sent.position, item.specialist, sent.description, sent.expected, max_iter=self._max_iter())
        finally:
            self.ctx.guard.try_rule = None
        self.fold(sent.action, answer.text, sent.position, answer.stopped or loop(self.calls, self.config.stuck.same_tool_call))

    def fold(self, action: RunItem, answer: str, position: int, looped: str | None) -> None:
        """An item's step is done (here or on another worker): its checks and judge decide whether the item is."""
        item = action.item
        data = {"item": item.id, "try": action.attempt}
        link = self.ctx.link
        verdicts, judged = run_checks(link.sessions, link.session(item.specialist), item, link.context(item.specialist)) if link else ([], [])
        feedback = looped or failure(verdicts)
        evidence = "\n".join(v.line() for v in verdicts)
        if feedback is None and judged:  # the judge is asked only when nothing else failed
            statements = [c.check for c in judged]
            verdict = self._verdict(f"judge {item.id}", self.config.judge, prompts.judge_task(item, statements, f"{answer}\n{evidence}"))
            evidence += f"\njudged: {verdict.reason}"
            feedback = None if verdict.passed else f"the judge: {verdict.reason}"
        if feedback is None:
            self.results[item.id], self.evidence[item.id] = answer, evidence
            self.course.item_done(item.id)
            self._remember(item.title, answer, evidence)
            self.note(
                "mission_item_done",
                f"item {item.id} done: {evidence.splitlines()[0] if evidence else 'no checks'}",
                {**data, "verdicts": evidence.splitlines()},
                position,
            )
        else:
            self.course.item_failed(item.id, feedback)
            data |= {"verdicts": evidence.splitlines(), "feedback": feedback}
            self.note("mission_item_failed", f"item {item.id} failed its checks: {feedback}", data, position)
        if self.course.plan is not None:
            self._write("PLAN.md", markdown(self.goal, self.course.plan, self._states(), self.course.version, self.course.done()))
        self._save()

    def _max_iter(self) -> int | None:
        """CrewAI's ``max_iter`` for an item's try: past its tool-call budget, so the mission's budget stops it first
        (as a failed try; CrewAI's own limit would only force an answer)."""
        limit = self.config.tool_calls_per_try
        return limit + 2 if limit else None

    def tool_ended(self, tool: ToolUse) -> None:
        if self.ctx.guard.try_rule is not None:  # an item's try in hand here: its tool calls are followed
            self.calls.append(Call(tool.tool, tool.arguments or "", observed(tool.output, tool.error), tool.error is not None))

    def _try_over(self) -> str | None:
        """Asked before each model call of the try in hand: a loop, or its tool-call budget spent, ends it. The events
        of the calls made so far are waited for first (CrewAI hands them to its handlers on other threads)."""
        from crewai.events import crewai_event_bus

        crewai_event_bus.flush(timeout=5)
        return loop(self.calls, self.config.stuck.same_tool_call) or over_budget(self.calls, self.config.tool_calls_per_try)

    def loop_in_store(self, position: int) -> str | None:
        """Why a step another worker carried out was stopped, or the loop its tool calls make, as the store has them."""
        stopped = [e for e in self.ctx.store.events(self.ctx.run_id, kinds=(STOPPED,)) if e["task_position"] == position]
        if stopped:
            return str((stopped[-1]["data"] or {}).get("reason") or stopped[-1]["message"])
        mine = [c for c in self.ctx.store.tool_calls(self.ctx.run_id) if c["task_position"] == position]
        calls = [Call(c["tool"], c["arguments"] or "", observed(c["output"], c["error"]), c["error"] is not None) for c in mine]
        return loop(calls, self.config.stuck.same_tool_call)

    # ------------------------------------------------------------ one step: one task for one specialist

    def _step(self, name: str, agent_id: str, description: str, expected: str, output: type[BaseModel]) -> Answer:
        """A step that only thinks (a plan, a verdict): no tools, its answer in ``output``'s schema."""
        step = self._add_step(name, agent_id)
        return run_step(self.ctx, self.catalog, step.position, agent_id, description, expected, output=output, tools=False)

    def _verdict(self, name: str, agent_id: str, asked: tuple[str, str]) -> prompts.Judgement:
        answer = self._step(name, agent_id, *asked, output=Verdict)
        verdict = prompts.read_judgement(answer.text)
        if answer.unfit and not verdict.passed:
            return prompts.Judgement(False, f"the answer was not a verdict: {answer.unfit}")
        return verdict

    def _add_step(self, name: str, agent_id: str) -> Any:
        from mamabear.engine.attempt import add_step

        planned = next(a for a in self.ctx.plan.agents if a.id == agent_id)
        return add_step(self.ctx, name, agent_id, planned.route.model)

    # ------------------------------------------------------------ records

    def _remember(self, title: str, answer: str, evidence: str) -> None:
        """An item's checked result goes to the shared memory (its tries' words never do: a step only recalls)."""
        from mamabear.engine.attempt import remember

        text = f"{title} (checked: {evidence.splitlines()[0] if evidence else 'no checks'})\n{answer}"
        remember(self.ctx.parts.memory, text, f"/run/{self.ctx.run_id}", "mission_result", {"goal": self.goal[:200]}, self.ctx.tracker)

    def _states(self) -> dict[str, Any]:
        return {i: ("done" if r.status == "done" else "failed" if r.failures else "pending") for i, r in self.course.items.items()}

    def _write(self, path: str, text: str) -> None:
        link = self.ctx.link
        if link is not None:
            agent = self.config.planner
            link.sessions.edit(link.session(agent), "create", path, link.context(agent), file_text=text)

    def _files(self) -> list[str] | None:
        """The files in the mission's workspace (not hidden ones), for the report; None without a sandbox or when it cannot tell."""
        link = self.ctx.link
        if link is None:
            return None
        agent = self.config.planner
        listing = f"find . -type f -not -path '*/.*' | sed 's|^[.]/||' | sort | head -n {FILES_SHOWN + 1}"
        try:
            result = link.sessions.exec(link.session(agent), listing, context=link.context(agent))
        except Exception:  # noqa: BLE001 - the listing is for the report; a mission that met its goal is not failed by it
            return None
        if not isinstance(result, CommandResult) or result.exit_code != 0:
            return None
        return [line for line in result.output.splitlines() if line.strip()]

    def note(self, kind: str, message: str, data: dict | None = None, position: int | None = None) -> None:
        self.ctx.tracker.event(kind, message, position=position, data=data)

    def _save(self) -> None:
        course = self.course
        done = sum(record.status == "done" for record in course.items.values())
        progress = f"after step {course.steps}: {done} of {len(course.items)} items done (plan v{course.version})"
        referenced = self.ctx.tracker.redact.referenced  # a secret as ${NAME}: a resume gives dependents the value
        results = {i: referenced(text[: prompts.RESULT_CHARS]) for i, text in self.results.items()}
        state = MissionState(course=self._course_state(), results=results, evidence=self.evidence, max_steps=self.config.max_steps)
        self.ctx.tracker.event("mission_state", progress, data=state.model_dump(mode="json"), replaces=True)  # the mission's checkpoint

    def _course_state(self) -> CourseState:
        return CourseState.model_validate({k: v for k, v in self.course.to_dict().items() if k != "plan"})  # each plan version is in its event

    @classmethod
    def resumed(
        cls, store: Store, run_id: str, config: MissionConfig, catalog: Catalog, more_steps: int | None = None, env: Mapping[str, str] | None = None
    ) -> Mission:
        """The mission as it was after its last completed step (the step cut short is done again; no completed one is).

        A mission that ended by itself (stuck, failed, out of steps or re-plans) is carried on: the items done stay
        done, the rest get their tries afresh, the planner its re-plans, and ``more_steps`` more steps are allowed (as
        many as its limit was, when not given). Without an ending, ``more_steps`` raises the limit from where it is.
        ``env``: where the secrets the saved results hold as ``${NAME}`` are put back from."""
        run = store.run(run_id)
        goal = str((run.inputs or {}).get("goal", ""))
        mission = cls(goal, config, catalog)
        if store.last_event(run_id, "mission_aborted") is not None:
            raise UsageError(f"mission {run_id} was aborted at its plan review, so it is not resumed; {restart_hint(goal, run_id)}.")
        saved = store.last_event(run_id, "mission_state")
        if saved is None:  # not started yet (a queued mission): the limits it was queued with
            mission.config = with_limits(config, more_steps or (run.options or {}).get("max_steps"))
        else:
            state = MissionState.read(saved["data"]) or MissionState()
            mission.config = config = with_limits(config, state.max_steps)  # --max-steps holds for the whole mission
            course = state.course
            plans = {(e["data"] or {}).get("version", n): e["data"]["plan"] for n, e in enumerate(store.events(run_id, kinds=("mission_plan",)), start=1)}
            plan = plans.get(course.version) or course.plan  # states saved before plans had versions carried the plan
            if course.version and plan is None:
                raise UsageError(f"mission {run_id} cannot be resumed: plan v{course.version} is missing from the run store.")
            mission.course = Course.from_dict({**course.model_dump(mode="json"), "plan": plan}, config)
            from mamabear.config.redact import dereferenced

            mission.results = {i: dereferenced(text, env or {}, f"the result of item {i} of mission {run_id}") for i, text in state.results.items()}
            mission.evidence = dict(state.evidence)
            ended = store.last_event(run_id, "mission_finished")
            if ended is not None and ended["id"] > saved["id"]:  # it ended after its last step: carried on
                mission.carried_on = (ended["data"] or {}).get("status", "failed"), (ended["data"] or {}).get("reason", "")
                mission.course.continued()
                more_steps = more_steps or config.max_steps
            if more_steps:
                mission.config = with_limits(config, mission.course.steps + more_steps)
                mission.course.config = mission.config
        return mission


def mission_crew(goal: str) -> Any:
    """The team a mission works with: the seven specialists, each on its own tier, with the sandbox's tools."""
    from mamabear.config.catalog import CrewSpec, InputSpec, SandboxSpec

    return CrewSpec(
        name="mission",
        description=goal,
        process="mission",
        agents=TEAM,
        tasks=(),
        inputs=(InputSpec("goal", "what the mission is to achieve", required=True),),
        tools=("computer",),
        sandbox=SandboxSpec(kind="development"),
        memory="shared",
    )


def crew_of(run: Any) -> Any:
    """The crew a run was made with when it is a mission (for ``prepare_resume``), else None."""
    return mission_crew(str((run.inputs or {}).get("goal", ""))) if run.process == "mission" else None


def next_move(store: Store, run_id: str, status: Status) -> str | None:
    """What to do about a mission that did not complete, when it differs from a crew run's hint: one aborted at its
    review is started again; one that ended by itself is carried on, with more steps or another model if need be."""
    if store.last_event(run_id, "mission_aborted") is not None:
        return restart_hint(str((store.run(run_id).inputs or {}).get("goal", "")), run_id)
    if status in (Status.STUCK, Status.FAILED) and store.last_event(run_id, "mission_finished") is not None:
        return f"carry it on with `mamabear resume {run_id}` once the cause is fixed (--max-steps N for more steps, --model to switch models)"
    return None


def restart_hint(goal: str, run_id: str) -> str:
    """How to start again a mission that cannot be carried on (aborted at its review)."""
    return f"start it again with `mamabear mission {shlex.quote(goal)}` (`mamabear runs show {run_id}` has its plan)"


def with_limits(config: MissionConfig, max_steps: int | None) -> MissionConfig:
    return config.model_copy(update={"max_steps": max_steps}) if max_steps is not None else config
