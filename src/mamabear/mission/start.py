"""A mission's start, made in one place: its goal checked, its settings, its team's plan and its work. The CLI's
`mission`, an eval's mission case and `resume` of a mission all start it here, so each gets the same checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mamabear.config.catalog import Catalog
from mamabear.engine.plan import Plan, make_plan
from mamabear.errors import UsageError
from mamabear.mission.config import MissionConfig
from mamabear.mission.runner import TEAM, Mission, Review, mission_crew, with_limits

if TYPE_CHECKING:
    from mamabear.engine.services import Services


@dataclass(frozen=True)
class MissionStart:
    goal: str
    plan: Plan
    config: MissionConfig
    catalog: Catalog

    def work(self, review: Review | None = None, review_first_only: bool = False) -> Mission:
        """The mission's work, made afresh (each run of an eval's case has its own)."""
        return Mission(self.goal, self.config, self.catalog, review=review, review_first_only=review_first_only)


def for_mission(ws: Services, goal: str, max_steps: int | None = None) -> MissionStart:
    """A new mission for ``goal`` (``ws``: the Services), checked once: a goal, and a team its settings can plan with."""
    if not goal.strip():
        raise UsageError('mission needs a goal, for example: mamabear mission "a CLI that converts CSV to JSON, with tests"')
    config = with_limits(MissionConfig.load(ws.roots), max_steps)
    wrong = config.check_agents(set(TEAM) & set(ws.catalog.agents))  # they plan and judge among the mission's team
    if wrong:
        raise UsageError(wrong[0])
    plan = make_plan(ws.catalog, ws.models, mission_crew(goal), {"goal": goal}, ws.settings, sandbox=ws.sandbox)
    return MissionStart(goal, plan, config, ws.catalog)


def resumed(ws: Services, run_id: str, more_steps: int | None = None) -> Mission:
    """The mission of run ``run_id`` as it was after its last completed step (carried on if it had ended by itself)."""
    return Mission.resumed(ws.store, run_id, MissionConfig.load(ws.roots), ws.catalog, more_steps, ws.settings.env)
