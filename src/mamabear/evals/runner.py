"""`mamabear eval`: each case of a case file run (``repeat`` times) as an ordinary run, tagged with its eval and case,
then checked; every result is stored (``eval_results``) for `stats`, baselines and the tuner.

Every case is planned before any runs, so a missing input or an unknown crew is found before money is spent. The
judged checks are scored by the judge's model (the case file's ``judge``, or missions.yaml's) through the same
resilient calls as a run's, so ``--record``/``--replay`` hold them too: an eval replayed in CI costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mamabear.config.limits import Limits
from mamabear.engine.services import Services
from mamabear.errors import EXIT_USAGE, UsageError
from mamabear.evals.cases import Case, CaseFile
from mamabear.evals.checks import Verdict, judge_with, verdicts
from mamabear.status import Status

if TYPE_CHECKING:
    from mamabear.engine.plan import Plan
    from mamabear.mission.start import MissionStart


@dataclass
class CaseResult:
    case: str
    repeat: int
    run_id: str
    status: str
    verdicts: list[Verdict]
    cost_usd: float  # the run's and the judge's
    seconds: float
    output: str | None = None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def score(self) -> float | None:
        scores = [v.score for v in self.verdicts if v.score is not None]
        return sum(scores) / len(scores) if scores else None

    def to_dict(self) -> dict[str, Any]:
        shown = {"case": self.case, "repeat": self.repeat, "run_id": self.run_id, "status": self.status, "passed": self.passed, "score": self.score}
        return {**shown, "checks": [v.to_dict() for v in self.verdicts]}


@dataclass(frozen=True)
class Planned:
    case: Case
    plan: Plan
    mission: MissionStart | None = None  # a mission case's start


@dataclass
class EvalRun:
    """One eval: ``ws`` (with --model, --base-url...), the case file, the crew, how many runs per case."""

    ws: Services
    cases: CaseFile
    crew: str | None
    repeat: int = 1
    tape: Any = None
    tag: str | None = None  # stored with the eval's name ("facts [tune]"), so trials are told from evals
    on_result: Any = None  # told each CaseResult as it comes (the live table)
    results: list[CaseResult] = field(default_factory=list)

    def planned(self) -> list[Planned]:
        from mamabear.engine.plan import make_plan
        from mamabear.mission.start import for_mission

        ws, plans = self.ws, []
        for case in self.cases.cases:
            start = None
            if case.mission:
                start = for_mission(ws, case.mission)  # the checks `mamabear mission` makes
                plan = start.plan
            else:
                crew = self.crew or self.cases.crew
                if not crew:
                    raise UsageError(f"{self.cases.path}: case '{case.name}' names no crew; give CREW, or `crew:` in the case file.")
                plan = make_plan(ws.catalog, ws.models, crew, case.inputs, ws.settings, sandbox=ws.sandbox)
            plans.append(Planned(case, plan, start))
        return plans

    def run(self) -> list[CaseResult]:
        from mamabear.mission.config import MissionConfig

        planned = self.planned()
        judge = None
        if any(c.kind == "judge" for p in planned for c in p.case.checks):
            judge = side_llm(self.ws, self.cases.judge or MissionConfig.load(self.ws.roots).judge, "judge", 0.0, self.tape)
        for p in planned:
            for n in range(1, self.repeat + 1):
                result = self._one(p, n, judge)
                self.results.append(result)
                if self.on_result is not None:
                    self.on_result(result)
        return self.results

    def _one(self, p: Planned, repeat: int, judge: SideLLM | None) -> CaseResult:
        from mamabear.engine.attempt import Attempt

        ws, started = self.ws, time.time()
        work = p.mission.work() if p.mission is not None else None  # a mission's work is made afresh for each run
        tags = {"eval": self.cases.name, "case": p.case.name}
        ended = Attempt(ws, p.plan, [], Limits(), work=work, tape=self.tape, tags=tags).run()
        if self.tape is not None and self.tape.replaying and ended.exit_code == EXIT_USAGE:  # a replay that misses is no result
            raise UsageError(f"case '{p.case.name}' (run {ended.run_id}): {ended.error}")
        spent_before = judge.guard.spent_usd if judge else 0.0
        failed = None if ended.status == Status.COMPLETED else f"{ended.status}: {ended.error or ''}".strip(": ")
        found = verdicts(p.case.checks, ended.output, lambda cmd: _in_sandbox(ws, ended.run_id, cmd), judge_with(judge.llm) if judge else None, failed)
        cost = ws.store.spent(ended.run_id)[0] + ((judge.guard.spent_usd - spent_before) if judge else 0.0)
        result = CaseResult(p.case.name, repeat, ended.run_id, str(ended.status), found, cost, time.time() - started, ended.output)
        ws.store.add_eval_result(
            eval=self.cases.name + (f" [{self.tag}]" if self.tag else ""),
            crew=p.plan.crew.name,
            case_name=p.case.name,
            repeat=repeat,
            run_id=ended.run_id,
            passed=result.passed,
            score=result.score,
            cost_usd=cost,
            seconds=result.seconds,
            checks=[v.to_dict() for v in found],
        )
        return result


@dataclass(frozen=True)
class SideLLM:
    """A model asked outside any run (the judge, the tuner's rewriter), and the guard that counts what it spends."""

    llm: Any
    guard: Any


def side_llm(ws: Services, agent_id: str, role: str, temperature: float, tape: Any = None) -> SideLLM:
    """Agent ``agent_id``'s model with the run's retries, fallback, redaction and recording, under a guard of its own;
    ``role`` names its calls in a recording."""
    from mamabear.config.redact import Redactor
    from mamabear.engine.build import make_resilient_llm
    from mamabear.llm.guard import Guard
    from mamabear.llm.pricing import Pricer
    from mamabear.llm.resilience import CallControl

    agent = ws.catalog.agent(agent_id)
    guard = Guard(Limits())
    control = CallControl(
        guard=guard, policy=ws.models.retry, pricer=Pricer.for_run(ws.models, ws.settings), tape=tape, secret=Redactor.for_settings(ws.settings).holds_secret
    )
    llm = make_resilient_llm(ws.models.route(agent.tier, ws.settings, pinned=agent.llm), temperature, ws.settings, ws.models, control)
    llm._mb_role = role
    return SideLLM(llm, guard)


def _in_sandbox(ws: Services, run_id: str, command: str) -> tuple[int, str]:
    """``command`` in the run's sandbox session: its exit code and the end of its output."""
    from mamabear.sandbox.backend import CommandResult
    from mamabear.sandbox.sessions import Context

    run = ws.store.run(run_id)
    if not run.session_id:
        return 127, "the run had no sandbox session to run it in"
    sessions = ws.sessions()
    session = sessions.get(run.session_id)
    try:
        result = sessions.exec(session, command, None, context=Context(run_id, run.attempt or 1, None, "eval"))
    finally:
        sessions.release(session)  # a cloud session the check resumed is paused again, not left billing
    if not isinstance(result, CommandResult):
        return 126, str(result)
    return (result.exit_code if result.exit_code is not None else -1), result.output.strip()[-600:]
