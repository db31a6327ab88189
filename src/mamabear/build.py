"""Turn a plan into CrewAI objects: one Agent per (specialist, tier), Tasks, and the Crew."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mamabear.catalog import Catalog
from mamabear.models import LOCAL_KEY, Route
from mamabear.plan import Plan, PlannedAgent
from mamabear.settings import Settings

LLM_TIMEOUT_S = 600.0


@dataclass
class Built:
    crew: Any  # crewai.Crew
    positions: dict[str, int]  # crewai task id -> position in the plan
    agents: dict[str, PlannedAgent]  # crewai agent id -> the planned agent it runs as


def make_llm(route: Route, temperature: float, settings: Settings) -> Any:
    from crewai import LLM

    kwargs: dict[str, Any] = {"model": route.llm_model, "temperature": temperature, "timeout": LLM_TIMEOUT_S}
    if route.base_url:
        kwargs["base_url"] = route.base_url
        kwargs["api_key"] = settings.api_key or settings.env.get("OPENAI_API_KEY") or LOCAL_KEY
    elif route.key_env:
        kwargs["api_key"] = settings.env[route.key_env]
    return LLM(**kwargs)


def build(plan: Plan, catalog: Catalog, settings: Settings) -> Built:
    from crewai import Agent, Crew, Process, Task

    def make_agent(planned: PlannedAgent, manager: bool = False) -> Any:
        spec = catalog.agent(planned.id)
        options = {"verbose": False, "allow_delegation": False, **spec.options}
        if manager:
            options["allow_delegation"] = True
        return Agent(
            role=spec.role, goal=spec.goal, backstory=spec.backstory,
            llm=make_llm(planned.route, planned.temperature, settings), **options,
        )

    by_planned: dict[tuple[str, str], Any] = {}
    agent_map: dict[str, PlannedAgent] = {}
    for planned in plan.agents:
        if plan.manager is not None and planned is plan.manager:
            continue
        agent = make_agent(planned)
        by_planned[(planned.id, planned.tier)] = agent
        agent_map[str(agent.id)] = planned

    manager_agent = None
    if plan.manager is not None:
        manager_agent = make_agent(plan.manager, manager=True)
        agent_map[str(manager_agent.id)] = plan.manager

    crew_tasks: list[Any] = []
    by_id: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for planned_task in plan.tasks:
        spec = catalog.tasks[planned_task.id]
        agent = by_planned[(planned_task.agent, planned_task.tier)] if planned_task.agent else None
        options = {"name": spec.id, **spec.options}
        if spec.context:  # otherwise CrewAI hands each task the previous task's output
            options["context"] = [by_id[c] for c in spec.context]
        task = Task(description=spec.description, expected_output=spec.expected_output, agent=agent, **options)
        by_id[spec.id] = task
        positions[str(task.id)] = planned_task.position
        crew_tasks.append(task)

    crew = Crew(
        agents=list(by_planned.values()),
        tasks=crew_tasks,
        process=Process.hierarchical if plan.crew.process == "hierarchical" else Process.sequential,
        manager_agent=manager_agent,
        verbose=False,
    )
    return Built(crew=crew, positions=positions, agents=agent_map)
