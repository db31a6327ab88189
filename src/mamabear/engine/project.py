"""A CrewAI project's crew, built as the project builds it: by the ``@CrewBase`` class of its ``crew.py`` (its tools,
hooks and per-task settings in Python), or by CrewAI's own loader of its ``crew.jsonc`` (its tools, custom tools
and Python references); mamabear routes each agent's model, records, limits and checkpoints it.

The plan comes from the project's YAML (``config/agents.yaml`` and ``tasks.yaml``, which crew.py reads too) or JSON;
the crew built must match it: its agents by role, its tasks by description, in the same order. A resumed run
builds the crew again (a checkpoint cannot hold its Python tools) and gives the tasks already done their stored
outputs, so none of them is asked again.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from mamabear.config.catalog import CREW_PY, Catalog
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


def project_crew(source: str, roots: list[Path]) -> Any:
    """The crew the project at ``source`` builds (its crew.py, or its crew.jsonc through CrewAI's loader); None: a
    crew.py that defines no ``@CrewBase`` class (its YAML is then the crew)."""
    from mamabear.compat.crewai_tools import MissingPackage, no_install_prompts

    path = Path(source)
    try:
        with no_install_prompts():
            if path.name != CREW_PY:
                return _json_crew(path)
            cls = crew_class(source, roots)
            if cls is None:
                return None
            instance = cls()
            if not callable(getattr(instance, "crew", None)):  # the name `crewai create crew` gives it, and its main.py calls
                raise UsageError(f"{source}: {cls.__name__} has no crew() method; crew.py builds its crew in an @crew method named crew.")
            return instance.crew()
    except MissingPackage as exc:
        raise UsageError(f"{source}: a tool of its crew needs {', '.join(exc.packages)}; install it (pip install {' '.join(exc.packages)}).") from exc


def _json_crew(path: Path) -> Any:
    from crewai.project.crew_loader import load_crew
    from crewai.project.json_loader import JSONProjectError

    try:
        crew, _defaults = load_crew(path)  # its input defaults are the plan's already
    except JSONProjectError as exc:
        raise UsageError(f"{' '.join(str(exc).split())}.".replace("..", ".")) from exc
    return crew


def json_problems(source: str) -> list[str]:
    """What CrewAI's own validation finds wrong with a crew.jsonc project (nothing is imported or run)."""
    from crewai.project.json_loader import JSONProjectError, JSONProjectValidationError, validate_crew_project

    try:
        validate_crew_project(source)
    except JSONProjectValidationError as exc:
        return [" ".join(e.split()) for e in exc.errors]
    except JSONProjectError as exc:
        return [" ".join(str(exc).split())]
    return []


def build_project(crew: Any, plan: Any, catalog: Catalog, parts: Any, checkpoint: Any = None) -> Any:
    """The crew the project built, each agent on its routed model (with its YAML's tools added), checked against the plan."""
    from crewai import Process

    from mamabear.engine.build import Built, guard_side_calls

    source = plan.crew.source
    catalog = catalog.scoped(plan.crew)
    if crew.process != Process.sequential:
        raise UsageError(
            f"{source}: its crew is {crew.process.value}; mamabear runs a CrewAI project's crew only sequentially (write crews/NAME.yaml for others)."
        )
    by_role = {catalog.agent(p.id).role.strip(): p for p in plan.agents}
    agents = {}
    for agent in crew.agents:
        planned = by_role.get(agent.role.strip())
        if planned is None:
            raise UsageError(f"{source}: its agent '{agent.role.strip()}' is not one of its YAML's; crew.py must take its agents from config/agents.yaml.")
        agent.llm = parts.llm(planned)
        agent.max_retry_limit = parts.models.retry.task_retries
        mine = {spec.name for spec in planned.library}  # its crewai-tools classes: made by mamabear, with its limits and keys
        agent.tools = [*(t for t in agent.tools or [] if type(t).__name__ not in mine), *parts.tools(planned)]
        agents[str(agent.id)] = planned
    wanted = [catalog.tasks[t.id].description.strip() for t in plan.tasks]
    written = [task.description.strip() for task in crew.tasks]
    if written != wanted:
        raise UsageError(f"{source}: its crew's tasks are not config/tasks.yaml's, in its order; crew.py must build them from there, in that order.")
    guard_side_calls(crew)
    crew.checkpoint = checkpoint
    if not _wants_memory(crew, parts):
        parts.memory = None  # nothing recalled, nothing saved: not even the run's result
    crew.memory = parts.memory or False
    crew.create_crew_memory()
    positions = {str(task.id): planned.position for task, planned in zip(crew.tasks, plan.tasks, strict=True)}
    return Built(crew=crew, positions=positions, agents=agents)


def _wants_memory(crew: Any, parts: Any) -> bool:
    """Whether a project's crew gets the shared memory: when it asks for memory (``memory=True`` or a Memory of its
    own), as under `crewai run`, or when memory.yaml's ``projects: always`` says every project's does."""
    from mamabear.memory.config import MemoryConfig

    return bool(crew.memory) or MemoryConfig.load(parts.roots).projects == "always"
