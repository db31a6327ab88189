"""What each step of a mission asks, and how the answers of judges are read.

Each function gives a task's (description, expected output) for one model-driven step: the
planner's plan or re-plan, a specialist's item, the judge's verdict, the planner's confirmation
of the goal. The texts carry only what the step needs (the goal, the plan's items, results and
evidence in short), so a step's prompt does not grow with the mission's length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mamabear.mission.plan import MissionPlan, PlanItem

RESULT_CHARS = 1500  # of a dependency's result handed to the item that needs it
# The plan's schema goes with the request (the provider's structured output, or in the prompt where a route has none):
# not in the task's words too, where it cost ~1,400 of a plan request's 1,600 tokens.
PLAN_ANSWER = "The plan as a JSON object of the schema given"


@dataclass(frozen=True)
class Specialist:
    id: str
    role: str
    goal: str


def _team(specialists: list[Specialist]) -> str:
    return "\n".join(f"- {s.id}: {s.role}. {s.goal}" for s in specialists)


def plan_task(goal: str, specialists: list[Specialist], problems: tuple[str, ...] = ()) -> tuple[str, str]:
    fix = ("\n\nYour last answer could not be used: " + "; ".join(problems) + ". Answer again, fixing that.") if problems else ""
    description = (
        f"Goal: {goal}\n\nMake the plan that reaches this goal. Give each item to the one specialist best suited to it:\n"
        f"{_team(specialists)}\n\nEach item has checkable criteria: a command that must exit 0 in the shared workspace, "
        "a file that must exist there (a path relative to it), or a statement a judge can decide from the evidence. "
        "A simple goal gets a one-item plan. Items list the ids of the items whose results they need in depends_on."
        f"{fix}"
    )
    return description, PLAN_ANSWER


def replan_task(goal: str, specialists: list[Specialist], plan: MissionPlan, done: Mapping[str, str], reason: str) -> tuple[str, str]:
    finished = "\n".join(f"- {i}: {result[:300]}" for i, result in done.items()) or "- none"
    remaining = "\n".join(f"- {item.id}: {item.title}" for item in plan.items if item.id not in done) or "- none"
    description = (
        f"Goal: {goal}\n\nThe plan must change: {reason}.\n\nDone (keep them; new items may depend on their ids):\n{finished}\n\n"
        f"Not done:\n{remaining}\n\nMake the items that remain to reach the goal, for these specialists:\n{_team(specialists)}"
    )
    return description, PLAN_ANSWER + ", with the items still to do"


def item_task(item: PlanItem, results: Mapping[str, str], feedback: str | None = None) -> tuple[str, str]:
    needed = "".join(f"\n\nResult of '{d}':\n{results[d][:RESULT_CHARS]}" for d in item.depends_on if d in results)
    criteria = "\n".join(f"- {c.kind}: {c.check}" for c in item.criteria)
    again = f"\n\nYour last try did not pass its checks: {feedback}\nFix that." if feedback else ""
    description = f"{item.title}\n\n{item.instructions}{needed}\n\nIt is done when:\n{criteria}{again}"
    return description, "What you did and where its results are (files, commands), in a few lines."


def judge_task(item: PlanItem, statements: list[str], evidence: str) -> tuple[str, str]:
    claims = "\n".join(f"- {s}" for s in statements)
    description = f"Item: {item.title}\n\nDecide from the evidence whether each statement holds:\n{claims}\n\nEvidence:\n{evidence[:4000]}"
    return description, 'Only a JSON object: {"passed": true or false, "reason": "one sentence"}'


def confirm_task(goal: str, evidence: Mapping[str, str]) -> tuple[str, str]:
    shown = "\n".join(f"- {item}: {text[:400]}" for item, text in evidence.items())
    description = f"Goal: {goal}\n\nEvery item of the plan is done. Evidence for each:\n{shown}\n\nIs the goal met? Say no if any evidence is missing."
    return description, 'Only a JSON object: {"passed": true or false, "reason": "one sentence"}'


@dataclass(frozen=True)
class Judgement:
    passed: bool
    reason: str


def read_judgement(answer: str) -> Judgement:
    """A judge's or planner's yes or no; an answer that is not one counts as no, saying so (never as a pass)."""
    found = re.search(r"\{.*\}", answer, re.DOTALL)
    try:
        data = json.loads(found.group(0)) if found else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("passed"), bool):
        return Judgement(False, f"the judge's answer was not a verdict: {' '.join(answer.split())[:200]}")
    return Judgement(data["passed"], str(data.get("reason") or "no reason given"))
