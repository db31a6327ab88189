"""A mission's plan: ordered items, each for one specialist, with criteria that can be checked.

The planner answers with ``contract(team)``: this schema with ``specialist`` one of the mission's team, asked for with
the provider's structured output (a route without it gets the schema in the prompt). ``read`` takes its answer
leniently (the first JSON object, repaired: prose around it, a fence, a trailing comma), ``problems`` says in
sentences what is wrong with a plan (the planner is asked again with them), ``repaired`` drops what a schema cannot
forbid and is unambiguous to drop (an item depending on itself or on an id the plan lacks),
``order`` gives the items in an order that respects their dependencies, and ``markdown`` writes
the checklist kept as PLAN.md in the mission's workspace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model

from mamabear.llm.wire import first_object


class Criterion(BaseModel):
    """How an item is known to be done: a command that must exit 0 in the sandbox, a file that must exist, or a statement for the judge."""

    kind: Literal["command", "file", "judge"]
    check: str = Field(min_length=1, description="The command, the path relative to the workspace, or the statement to judge.")


class PlanItem(BaseModel):
    id: str = Field(min_length=1, description="A short id, unique in the plan, such as 'tests'.")
    title: str = Field(min_length=1)
    specialist: str = Field(description="The agent id of the specialist best suited to it.")
    instructions: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list, description="Ids of the items whose results it needs.")
    criteria: list[Criterion] = Field(default_factory=list)


class MissionPlan(BaseModel):
    items: list[PlanItem]


def contract(team: Sequence[str]) -> type[MissionPlan]:
    """The plan's schema for a mission of this team: a specialist is one of its ids (an enum the provider holds to)."""
    one_of: Any = Literal.__getitem__(tuple(team))
    item = create_model("PlanItem", __base__=PlanItem, specialist=(one_of, Field(description="The id of the specialist best suited to it.")))
    return create_model("MissionPlan", __base__=MissionPlan, items=(list[item], ...))  # type: ignore[valid-type]


class Verdict(BaseModel):
    """A judge's or planner's yes or no, with its reason."""

    passed: bool
    reason: str = Field(description="One sentence.")


Status = Literal["pending", "running", "done", "failed"]
MARKS: Mapping[str, str] = {"pending": "[ ]", "running": "[~]", "done": "[x]", "failed": "[!]"}


class PlanError(ValueError):
    """An answer that is not a plan at all (no JSON, or not of the schema): one sentence."""


def read(answer: str) -> MissionPlan:
    """The plan in a planner's answer: its first JSON object, bare or fenced, with prose around it, repaired."""
    data = first_object(answer)
    if not isinstance(data, dict):
        raise PlanError(f"the plan is not JSON: the answer has no JSON object ({' '.join(answer.split())[:80]!r})")
    try:
        return MissionPlan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PlanError(f"the plan does not fit its schema ({where}: {first['msg']})") from exc


def problems(plan: MissionPlan, specialists: set[str], done: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What makes the plan unusable, one sentence each: no items, a duplicate id, an unknown specialist or
    dependency, an item with nothing to check, a cycle of dependencies. ``done``: items done under an earlier
    version of the plan, which a re-plan may depend on without listing them again."""
    found: list[str] = []
    if not plan.items:
        return ["the plan has no items"]
    ids = [item.id for item in plan.items]
    found += [f"item id '{i}' is used {ids.count(i)} times" for i in sorted(set(ids)) if ids.count(i) > 1]
    for item in plan.items:
        if item.specialist not in specialists:
            found.append(f"item '{item.id}' names specialist '{item.specialist}', which is not one of {', '.join(sorted(specialists))}")
        found += [f"item '{item.id}' depends on '{d}', which is not an item of the plan" for d in item.depends_on if d not in ids and d not in done]
        if not item.criteria:
            found.append(f"item '{item.id}' has no criteria: give a command, a file or a statement that shows it is done")
    cycle = _cycle(plan)
    if cycle:
        found.append("the items depend on each other in a cycle: " + " -> ".join(cycle))
    return found


def repaired(plan: MissionPlan, done: set[str] | frozenset[str] = frozenset()) -> tuple[MissionPlan, list[str]]:
    """The plan without what is unambiguous to drop: an item's dependency on itself, on an id that is not in the
    plan (nor done before), or listed twice; and a sentence for each thing dropped, for the run's log."""
    ids = {item.id for item in plan.items}
    dropped: list[str] = []
    items = []
    for item in plan.items:
        keep: list[str] = []
        for dep in item.depends_on:
            if dep == item.id:
                dropped.append(f"item '{item.id}' depended on itself")
            elif dep not in ids and dep not in done:
                dropped.append(f"item '{item.id}' depended on '{dep}', which is not an item of the plan")
            elif dep not in keep:
                keep.append(dep)
        items.append(item.model_copy(update={"depends_on": keep}))
    return (plan.model_copy(update={"items": items}), [f"{what}: the dependency was dropped" for what in dropped]) if dropped else (plan, [])


def _cycle(plan: MissionPlan) -> list[str]:
    """A dependency cycle, as the ids around it (first repeated at the end); [] when there is none."""
    needs: dict[str, list[str]] = {}
    for item in plan.items:  # an id used twice: both items' dependencies count
        needs.setdefault(item.id, []).extend(item.depends_on)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in needs.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep in needs and state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for item in plan.items:
        if state.get(item.id) is None:
            found = visit(item.id)
            if found:
                return found
    return []


def order(plan: MissionPlan, done: set[str] | frozenset[str] = frozenset()) -> list[PlanItem]:
    """The items with every item after those it depends on, otherwise in the planner's order (a plan without problems;
    ``done``: items done under an earlier version, which it may depend on)."""
    placed: list[PlanItem] = []
    done = set(done)
    waiting = list(plan.items)
    while waiting:
        ready = next(item for item in waiting if all(d in done for d in item.depends_on))
        waiting.remove(ready)
        placed.append(ready)
        done.add(ready.id)
    return placed


def markdown(goal: str, plan: MissionPlan, states: Mapping[str, Status] | None = None, version: int = 1, done: set[str] | frozenset[str] = frozenset()) -> str:
    """PLAN.md: the goal, then each item as a checklist line with its specialist, dependencies and criteria
    (``done``: items done under an earlier version, which a re-plan's items may depend on)."""
    states = states or {}
    lines = [f"# Mission plan (version {version})", "", f"Goal: {goal}", ""]
    for item in order(plan, done):
        mark = MARKS[states.get(item.id, "pending")]
        after = f", after {', '.join(item.depends_on)}" if item.depends_on else ""
        lines.append(f"- {mark} **{item.title}** (`{item.id}`, {item.specialist}{after})")
        lines += [f"  - {c.kind}: `{c.check}`" if c.kind != "judge" else f"  - judged: {c.check}" for c in item.criteria]
    return "\n".join(lines) + "\n"
