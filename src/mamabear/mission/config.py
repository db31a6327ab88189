"""``config/missions.yaml``: who plans and who judges, and the limits that keep a mission from running away."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from mamabear.config import layered
from mamabear.config.yamlfile import YamlMapping

AgentId = Annotated[str, Field(min_length=1, description="an agent id, such as scout_commander")]


def _count(least: int) -> Any:
    return Field(ge=least, description=f"a whole number of at least {least}")


class StuckLimits(layered.Section):
    same_failure: Annotated[int, _count(1)] = 2  # an item failing the same way this many times in a row
    same_tool_call: Annotated[int, _count(1)] = 3  # the same tool call with the same result (or failing) this many times in a row
    steps_without_progress: Annotated[int, _count(1)] = 10  # model-driven steps with no item completed


class MissionConfig(layered.Section):
    planner: AgentId = "scout_commander"  # makes and remakes the plan, and decides the mission is done
    judge: AgentId = "model_coordinator"  # gives pass or fail, with a reason, on the criteria no command can check
    max_steps: Annotated[int, _count(0)] = 200  # model-driven steps in all (--max-steps)
    item_retries: Annotated[int, _count(0)] = 2  # a failed item is tried again this many times, with the failure fed back
    replans: Annotated[int, _count(0)] = 3  # then the planner remakes the remaining plan, at most this many times
    parallel_items: Annotated[int, _count(1)] = 4  # on a worker pool: independent items run at once (1: one at a time)
    tool_calls_per_try: Annotated[int, _count(0)] = 15  # an item's try ends after this many tool calls (0: CrewAI's max_iter, 25)
    stuck: StuckLimits = StuckLimits()
    origin: dict[str, str] = Field({}, exclude=True)  # planner/judge -> the file:line that set it

    @classmethod
    def load(cls, roots: list[Path]) -> MissionConfig:
        return layered.read(roots, "missions.yaml", cls)

    @model_validator(mode="before")
    @classmethod
    def _origin(cls, data: Any) -> Any:
        if isinstance(data, YamlMapping):
            return {**data, "origin": {role: data.where(role) for role in ("planner", "judge") if role in data}}
        return data

    def check_agents(self, agents: set[str]) -> list[str]:
        """The planner and the judge must be agents of the catalog (each error at the file:line that named it)."""
        return [
            f"{self.origin.get(role, 'missions.yaml')}: {role} '{agent}' is not an agent (agents: {', '.join(sorted(agents))})."
            for role, agent in (("planner", self.planner), ("judge", self.judge))
            if agent not in agents
        ]
