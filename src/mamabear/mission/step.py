"""One model-driven step of a mission: one task for one specialist, as a one-task crew.

A step runs in the attempt that holds the mission, or, on a worker pool, in an attempt of its own on another worker
(``SentStep``, started by `mamabear step RUN POSITION`): it reads what to do from the ``mission_step_sent`` event of
its position, writes its row, calls and tool calls as any step does, and ends with its row settled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mamabear.engine.context import RunContext
from mamabear.errors import UsageError

if TYPE_CHECKING:
    from mamabear.config.catalog import Catalog
    from mamabear.store.database import Store

SENT = "mission_step_sent"  # the event that holds a step sent to the pool: its agent, description, expected output


def run_step(ctx: RunContext, catalog: Catalog, position: int, agent_id: str, description: str, expected: str) -> str:
    """Carry out the step at ``position`` (its row exists) for ``agent_id``; its answer."""
    from crewai import Crew, Process, Task

    from mamabear.engine.build import Built, make_agent

    parts = ctx.parts
    planned = next(a for a in ctx.plan.agents if a.id == agent_id)
    step = ctx.state.task(position)
    assert step is not None  # its row was added before it was run
    agent = make_agent(catalog, parts, planned)
    task = Task(name=step.task, description=description, expected_output=expected, agent=agent)
    crew = Crew(agents=[agent], tasks=[task], process=Process.sequential, verbose=False, memory=parts.memory or False)
    tracker = ctx.tracker
    tracker.attach(Built(crew=crew, positions={str(task.id): position}, agents={str(agent.id): planned}))
    try:
        result: Any = crew.kickoff()
    finally:
        tracker.detach()
    tracker.complete_task(position, result.raw)
    return str(result.raw or "")


class SentStep:
    """The work of an attempt that carries out one step a mission sent to the pool."""

    def __init__(self, store: Store, run_id: str, position: int, catalog: Catalog) -> None:
        sent = [e for e in store.events(run_id, kinds=(SENT,)) if e["task_position"] == position]
        if not sent:
            raise UsageError(f"run {run_id} sent no step {position} to the pool.")
        self.spec, self.position, self.catalog = sent[-1]["data"] or {}, position, catalog

    def __str__(self) -> str:
        return f"step {self.position}"

    def kickoff(self, ctx: RunContext) -> str:
        ctx.guard.check()
        return run_step(ctx, self.catalog, self.position, self.spec["agent"], self.spec["description"], self.spec["expected"])
