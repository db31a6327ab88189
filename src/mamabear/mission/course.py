"""The course of a mission: what happened so far, and what to do next. Pure decisions, no model and no CrewAI.

The mission runner asks ``next()`` for an action, carries it out (a model-driven step), and
tells the course how it went (``planned``, ``item_done``, ``item_failed``, ``confirmation``).
The course holds the limits of ``MissionConfig``: a failed item is tried again with its failure
fed back, then the planner re-plans (a bounded number of times); the same failure repeated, the
same tool call repeated or no item done in N steps mean a re-plan, then a stop as ``stuck``,
with a sentence that says what repeated. Its whole state is a small dict (``to_dict``), kept
with each checkpoint: it grows with the plan, never with the number of steps taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mamabear.mission.config import MissionConfig
from mamabear.mission.plan import MissionPlan, PlanItem, order

PLAN_ANSWERS = 2  # a planner whose answer is not a usable plan is asked once more, with what was wrong
_VARYING = re.compile(r"\b0x[0-9a-f]+\b|\b(?=[\w-]*\d)(?=[\w-]*[a-z])[\w-]{6,}\b|\d+(?:[.,:]\d+)*")


def failure_key(reason: str) -> str:
    """What makes two failures "the same": the criterion and how it failed, with the numbers, times and ids that real
    output carries (a test's timing, a pid, a temporary path) made alike; an exit code stays itself."""
    parts = re.split(r"(exited \d+)", reason.lower())
    return "".join(part if part.startswith("exited ") else _VARYING.sub("#", part) for part in parts)


@dataclass(frozen=True)
class MakePlan:
    """Ask the planner for the plan; ``problems``: what was wrong with its last answer."""

    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunItem:
    item: PlanItem
    attempt: int  # 1 for the first try
    feedback: str | None = None  # why the last try failed, for the specialist


@dataclass(frozen=True)
class Replan:
    """Ask the planner to remake the items not done yet, knowing why."""

    reason: str


@dataclass(frozen=True)
class Confirm:
    """Every item is done: the planner says whether the goal is met, with the evidence of each criterion."""


@dataclass(frozen=True)
class Finish:
    status: str  # completed | failed | stuck
    reason: str


Action = MakePlan | RunItem | Replan | Confirm | Finish


@dataclass
class ItemRecord:
    status: str = "pending"  # pending | done | failed
    attempts: int = 0  # tries in this plan version
    failures: list[str] = field(default_factory=list)  # the reasons of the failures in a row, newest last

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "attempts": self.attempts, "failures": self.failures}


@dataclass
class Course:
    goal: str
    config: MissionConfig
    plan: MissionPlan | None = None
    version: int = 0  # plan versions so far
    items: dict[str, ItemRecord] = field(default_factory=dict)
    steps: int = 0  # model-driven steps taken
    since_progress: int = 0  # steps since an item was last done (or the plan last remade)
    replans: int = 0
    plan_problems: list[str] = field(default_factory=list)  # of the planner's last answer, when it was not usable
    plan_answers: int = 0  # unusable answers in a row
    pending_replan: str | None = None  # why a re-plan is due
    stuck_replanned: bool = False  # a re-plan for being stuck was made: the next time is a stop
    confirmed: bool = False
    finish: Finish | None = None  # a stop decided while hearing how a step went

    # ------------------------------------------------------------ deciding

    def next(self) -> Action:
        if self.finish is not None:
            return self.finish
        if self.plan_problems and self.plan_answers >= PLAN_ANSWERS:
            what = "plan" if self.plan is None else "re-plan"
            return Finish("failed", f"the planner gave no usable {what} in {PLAN_ANSWERS} answers: {'; '.join(self.plan_problems)}")
        if self.plan is None:
            return MakePlan(tuple(self.plan_problems))
        if self.confirmed and self.pending_replan is None and all(record.status == "done" for record in self.items.values()):
            return Finish("completed", "every item is done and the goal is met")  # even on the last step allowed
        if self.steps >= self.config.max_steps:
            return Finish("failed", f"reached its limit of {self.config.max_steps} steps before the goal was met")
        if self.plan_problems:
            why = f"{self.pending_replan}; " if self.pending_replan else ""
            return Replan(why + "the last re-plan was not usable: " + "; ".join(self.plan_problems))
        if self.pending_replan is None and self.since_progress >= self.config.stuck.steps_without_progress:
            self._stuck(f"no item was done in {self.since_progress} steps")
            return self.next()
        if self.pending_replan is not None:
            return self._replan(self.pending_replan)
        for item in order(self.plan, self.done()):
            record = self.items[item.id]
            if record.status == "pending" and all(self.items[d].status == "done" for d in item.depends_on):
                return RunItem(item, record.attempts + 1, record.failures[-1] if record.failures else None)
        # An item out of tries, or failing the same way again, is re-planned only once nothing else can run: it does
        # not starve the items that do not depend on it.
        failed = {i: r for i, r in self.items.items() if r.status == "failed"}
        same = next(((i, r) for i, r in failed.items() if self._same_again(r)), None)
        if same is not None:
            self._stuck(f"item '{same[0]}' failed the same way {self.config.stuck.same_failure} times in a row ({same[1].failures[-1]})")
            return self.next()
        spent = [f"item '{i}' failed {r.attempts} times (last: {r.failures[-1] if r.failures else '-'})" for i, r in failed.items()]
        if spent:
            return self._replan("; ".join(spent))
        if all(record.status == "done" for record in self.items.values()):
            return Confirm()
        return Finish("failed", "no item can be started: each waits on one that failed")

    def _replan(self, reason: str) -> Action:
        if self.replans >= self.config.replans:
            return Finish("failed", f"{reason}; the plan was remade {self.replans} times already")
        return Replan(reason)

    def ready(self, most: int) -> list[RunItem]:
        """When ``next()`` is a RunItem: it and the other items that can start now (their dependencies done), at most
        ``most`` and no more than the steps left, to run at once. Each is told back one by one, as for ``next()``."""
        first = self.next()
        if not isinstance(first, RunItem) or self.plan is None:
            return []
        room = max(1, min(most, self.config.max_steps - self.steps))
        batch = [first]
        for item in order(self.plan, self.done()):
            record = self.items[item.id]
            if len(batch) >= room:
                break
            if item.id != first.item.id and record.status == "pending" and all(self.items[d].status == "done" for d in item.depends_on):
                batch.append(RunItem(item, record.attempts + 1, record.failures[-1] if record.failures else None))
        return batch

    def _same_again(self, record: ItemRecord) -> bool:
        """Whether an item's last failures are one failure repeated (its numbers, times and ids aside)."""
        same = self.config.stuck.same_failure
        return len(record.failures) >= same and len({failure_key(f) for f in record.failures[-same:]}) == 1

    def last_plan_answer(self) -> bool:
        """Whether the planner's answer in hand is the last one it is asked for (its problems were told to it once)."""
        return self.plan_answers + 1 >= PLAN_ANSWERS

    def done(self) -> set[str]:
        """The ids of the items done, in this plan version or an earlier one (a re-plan may depend on them)."""
        return {i for i, record in self.items.items() if record.status == "done"}

    def _stuck(self, what: str) -> None:
        """Being stuck is a re-plan the first time (given its own N steps to show progress), a stop the second."""
        if self.stuck_replanned:
            self.finish = Finish("stuck", f"{what}, again after a re-plan")
        elif self.replans >= self.config.replans:
            self.finish = Finish("stuck", f"{what}, with the plan remade {self.replans} times already")
        else:
            self.stuck_replanned = True
            self.pending_replan = f"stuck: {what}"
            self.since_progress = 0

    # ------------------------------------------------------------ hearing how it went

    def planned(self, plan: MissionPlan, problems: list[str]) -> None:
        """The planner's answer (a plan or a re-plan) and what makes it unusable ([] when nothing does)."""
        self.steps += 1
        if problems:
            self.since_progress += 1
            self.plan_problems, self.plan_answers = list(problems), self.plan_answers + 1
            return
        if self.plan is not None:  # a re-plan: asked for by pending_replan, or for the items out of tries
            self.replans += 1
            self.pending_replan = None
        self.revised(plan)
        self.plan_problems, self.plan_answers = [], 0  # a new plan is not progress: steps_without_progress counts on

    def revised(self, plan: MissionPlan) -> None:
        """A new version of the plan, free of problems (a re-plan, or the plan as a person edited it at its review)."""
        kept = {i: r for i, r in self.items.items() if r.status == "done"}  # what is done stays done, listed again or not
        self.items = {**kept, **{item.id: kept.get(item.id, ItemRecord()) for item in plan.items}}
        self.plan, self.version = plan, self.version + 1

    def unusable_answer(self, problem: str) -> None:
        """The planner answered with no plan at all (no JSON, not the schema)."""
        self.planned(MissionPlan(items=[]), [problem])

    def item_done(self, item_id: str) -> None:
        self.steps += 1
        self.since_progress = 0
        record = self.items[item_id]
        record.status, record.attempts, record.failures = "done", record.attempts + 1, []
        self.confirmed = False
        self.stuck_replanned = False  # progress: a later, unrelated loop gets its own re-plan

    def item_failed(self, item_id: str, reason: str) -> None:
        """A try of the item failed its checks (or looped on a tool call): tried again, re-planned, or the mission is stuck."""
        self.steps += 1
        self.since_progress += 1
        record = self.items[item_id]
        record.attempts += 1
        record.failures = [*record.failures, reason][-self.config.stuck.same_failure :]  # what the stuck rule reads, no more
        if self._same_again(record) or record.attempts > self.config.item_retries:
            record.status = "failed"  # re-planned (or stuck) once nothing else can run

    def confirmation(self, met: bool, reason: str) -> None:
        """The planner's word on the goal once every item is done."""
        self.steps += 1
        if met:
            self.confirmed = True
        else:
            self.pending_replan = f"the goal is not met yet: {reason}"

    def continued(self) -> None:
        """The mission ended by itself (stuck, failed, out of steps or re-plans) and is carried on: what is done stays
        done; the items not done get their tries afresh, the planner its re-plans and answers, the stuck rules a clean
        slate. (The step limit is the runner's: it is raised with the mission's settings.)"""
        self.finish = None
        for record in self.items.values():
            if record.status != "done":
                record.status, record.attempts, record.failures = "pending", 0, []
        self.replans, self.plan_answers, self.since_progress, self.stuck_replanned = 0, 0, 0, False

    # ------------------------------------------------------------ checkpoints

    def to_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "plan": self.plan.model_dump() if self.plan is not None else None,
            "version": self.version,
            "items": {i: r.to_dict() for i, r in self.items.items()},
            "steps": self.steps,
            "since_progress": self.since_progress,
            "replans": self.replans,
            "plan_problems": self.plan_problems,
            "plan_answers": self.plan_answers,
            "pending_replan": self.pending_replan,
            "stuck_replanned": self.stuck_replanned,
            "confirmed": self.confirmed,
            "finish": [self.finish.status, self.finish.reason] if self.finish is not None else None,
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any], config: MissionConfig) -> Course:
        course = cls(saved["goal"], config)
        course.plan = MissionPlan.model_validate(saved["plan"]) if saved.get("plan") else None
        course.items = {i: ItemRecord(r["status"], r["attempts"], list(r["failures"])) for i, r in saved.get("items", {}).items()}
        for key in ("version", "steps", "since_progress", "replans", "plan_problems", "plan_answers", "pending_replan", "stuck_replanned", "confirmed"):
            setattr(course, key, saved.get(key, getattr(course, key)))
        if saved.get("finish"):
            course.finish = Finish(*saved["finish"])
        return course
