"""A CrewAI project's own ``crew.py``: its ``@CrewBase`` class builds the crew as the project wrote it (its tools,
hooks and per-task settings in Python), and mamabear routes each agent's model, records, limits and checkpoints it.

The plan comes from the project's YAML (``config/agents.yaml`` and ``tasks.yaml``, which crew.py reads too); the
crew crew.py builds must match it: its agents by role, its tasks by description, in the same order. A resumed
run builds the crew again from crew.py (a checkpoint cannot hold its Python tools) and gives the tasks already
done their stored outputs, so none of them is asked again.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from mamabear.config.catalog import Catalog
from mamabear.config.refs import project_path
from mamabear.errors import UsageError


def crew_class(source: str, roots: list[Path]) -> Any:
    """The ``@CrewBase`` class of the project's crew.py (``source``), or None when it defines none."""
    path = Path(source)
    with project_path(roots):
        try:
            name = f"{path.parent.name}.crew"
            for stale in (name, path.parent.name):  # read afresh: this process may have imported another project's, or an older file
                sys.modules.pop(stale, None)
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - the project's own module failed as it was imported
            raise UsageError(f"{path}: importing the project's crew.py failed: {type(exc).__name__}: {exc}.") from exc
    if Path(module.__file__ or "").resolve() != path.resolve():
        raise UsageError(f"{path}: importing {name} found {module.__file__} instead; rename the package or fix sys.path.")
    found = [v for v in vars(module).values() if isinstance(v, type) and getattr(v, "is_crew_class", False)]
    return found[0] if found else None


def build_project(cls: Any, plan: Any, catalog: Catalog, parts: Any, checkpoint: Any = None) -> Any:
    """The crew crew.py builds, each agent on its routed model (with its YAML's tools added), checked against the plan."""
    from crewai import Process

    from mamabear.engine.build import Built

    source = plan.crew.source
    catalog = catalog.scoped(plan.crew)
    instance = cls()
    if not callable(getattr(instance, "crew", None)):  # the name `crewai create crew` gives it, and its main.py calls
        raise UsageError(f"{source}: {cls.__name__} has no crew() method; crew.py builds its crew in an @crew method named crew.")
    crew = instance.crew()
    if crew.process != Process.sequential:
        raise UsageError(f"{source}: its crew is {crew.process.value}; mamabear runs a crew.py crew only sequentially (write crews/NAME.yaml for others).")
    by_role = {catalog.agent(p.id).role.strip(): p for p in plan.agents}
    agents = {}
    for agent in crew.agents:
        planned = by_role.get(agent.role.strip())
        if planned is None:
            raise UsageError(f"{source}: its agent '{agent.role.strip()}' is not one of config/agents.yaml's; crew.py must take its agents from there.")
        agent.llm = parts.llm(planned)
        agent.max_retry_limit = parts.models.retry.task_retries
        agent.tools = [*(agent.tools or []), *parts.tools(planned)]
        agents[str(agent.id)] = planned
    wanted = [catalog.tasks[t.id].description.strip() for t in plan.tasks]
    written = [task.description.strip() for task in crew.tasks]
    if written != wanted:
        raise UsageError(f"{source}: its crew's tasks are not config/tasks.yaml's, in its order; crew.py must build them from there, in that order.")
    crew.checkpoint = checkpoint
    crew.memory = parts.memory or False
    crew.create_crew_memory()
    positions = {str(task.id): planned.position for task, planned in zip(crew.tasks, plan.tasks, strict=True)}
    return Built(crew=crew, positions=positions, agents=agents)
