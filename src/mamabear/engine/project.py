"""A CrewAI project's crew, built as the project builds it: by the ``@CrewBase`` class of its ``crew.py`` (its tools,
hooks and per-task settings in Python), or by CrewAI's own loader of its ``crew.jsonc`` (its tools, custom tools
and Python references); mamabear routes each agent's model, records, limits and checkpoints it.

The plan comes from the crew the project builds, as `crewai run` builds it: its tasks in order, the agent each runs
on (given in tasks.yaml or in crew.py), its process and manager. Each agent and task is matched to its YAML entry
(agents by role, tasks by description), whose settings mamabear reads (tier, tools); one made in Python alone is
planned as it was made. A resumed run builds the crew again (a checkpoint cannot hold its Python tools) and gives
the tasks already done their stored outputs, so none of them is asked again.
"""

from __future__ import annotations

import importlib
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mamabear.config.catalog import CREW_PY, AgentSpec, Catalog, CrewSpec, CrewTask, InputSpec, TaskSpec, placeholders
from mamabear.config.refs import project_path
from mamabear.errors import ConfigError, UsageError


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
            with project_path(roots):
                try:
                    instance = cls()
                    if not callable(getattr(instance, "crew", None)):  # the name `crewai create crew` gives it; main.py calls it
                        raise UsageError(f"{source}: {cls.__name__} has no crew() method; crew.py builds its crew in an @crew method named crew.")
                    return instance.crew()
                except (UsageError, MissingPackage):
                    raise
                except Exception as exc:  # noqa: BLE001 - the project's own code failed as it built its crew
                    raise UsageError(f"{source}: building its crew failed: {type(exc).__name__}: {_whole(exc)}") from exc
    except MissingPackage as exc:
        raise UsageError(f"{source}: a tool of its crew needs {', '.join(exc.packages)}; install it (pip install {' '.join(exc.packages)}).") from exc


def _whole(exc: BaseException) -> str:
    """An error's whole text on one line (pydantic's "1 validation error for Crew" names the field on its next lines)."""
    text = " ".join(str(exc).split())
    return text if text.endswith(".") else text + "."


@dataclass
class ProjectCrew:
    """The crew a project built and the plan's names for what is in it."""

    crew: Any  # the CrewAI Crew, not yet run
    spec: CrewSpec  # what the plan is made from: its tasks in order, each on its agent, its process and manager
    names: dict[int, str] = field(default_factory=dict)  # id() of each agent object (the manager too) -> its agent id
    agents: dict[str, AgentSpec] = field(default_factory=dict)  # agents made in Python alone (no YAML entry)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)  # tasks made in Python alone
    tools: dict[str, tuple[str, ...]] = field(default_factory=dict)  # agent id -> the names of the tools crew.py gave it
    seconds: float = 0.0  # importing the project and building its crew


def as_built(spec: CrewSpec, catalog: Catalog) -> ProjectCrew | None:
    """The project's crew built, and the plan's crew taken from it; None: a crew.py with no ``@CrewBase`` class."""
    from mamabear.compat.crewai import made_manager

    started = time.monotonic()
    crew = project_crew(spec.source, catalog.roots)
    if crew is None:
        return None
    scope = catalog.scoped(spec)
    made = ProjectCrew(crew=crew, spec=spec)
    by_role: dict[str, str] = {}
    for agent_id, agent_spec in scope.agents.items():
        by_role.setdefault(agent_spec.role.strip(), agent_id)

    def name(agent: Any) -> str:
        if id(agent) not in made.names:
            role = str(agent.role).strip()
            if role not in by_role:  # an agent made in Python alone: planned as made, on the balanced tier
                by_role[role] = _fresh(role, {*scope.agents, *made.agents})
                made.agents[by_role[role]] = AgentSpec(id=by_role[role], role=role, goal=str(agent.goal), backstory=str(agent.backstory), source=spec.source)
            made.names[id(agent)] = by_role[role]
        return made.names[id(agent)]

    by_text: dict[str, list[str]] = {}
    for task_id, task_spec in scope.tasks.items():
        by_text.setdefault(task_spec.description.strip(), []).append(task_id)
    items: list[CrewTask] = []
    for position, task in enumerate(crew.tasks, start=1):
        free = [t for t in by_text.get(str(task.description).strip(), []) if t not in {i.task for i in items}]
        task_id = free[0] if free else _fresh(str(task.name or f"task_{position}"), {*scope.tasks, *made.tasks})
        if not free:
            made.tasks[task_id] = TaskSpec(id=task_id, description=str(task.description), expected_output=str(task.expected_output), source=spec.source)
        items.append(CrewTask(task=task_id, agent=name(task.agent) if task.agent is not None else None))
    agents = [name(agent) for agent in crew.agents]
    made.tools = {name(agent): tuple(str(getattr(t, "name", type(t).__name__)) for t in agent.tools or []) for agent in crew.agents}
    process = str(getattr(crew.process, "value", crew.process))
    manager = name(made_manager(crew)) if process == "hierarchical" else None
    texts = [t for i in items for t in _texts(scope.tasks.get(i.task) or made.tasks[i.task])]
    texts += [t for a in dict.fromkeys([*agents, *([manager] if manager else [])]) for t in _texts(scope.agents.get(a) or made.agents[a])]
    known = {i.name: i for i in spec.inputs}
    inputs = tuple(known.get(n) or InputSpec(name=n, required=True) for n in placeholders(*texts))
    made.spec = replace(spec, process=process, agents=tuple(agents), tasks=tuple(items), manager=manager, inputs=inputs)
    made.seconds = time.monotonic() - started
    return made


def _texts(spec: AgentSpec | TaskSpec) -> tuple[str, ...]:
    return (spec.role, spec.goal, spec.backstory) if isinstance(spec, AgentSpec) else (spec.description, spec.expected_output)


def slug(text: str) -> str:
    """An id for something made in Python: its name (or role) in snake case."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "agent"


def _fresh(text: str, taken: set[str]) -> str:
    """``slug(text)``, numbered if taken."""
    base = slug(text)
    found, n = base, 1
    while found in taken:
        n += 1
        found = f"{base}_{n}"
    return found


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


def project_problems(catalog: Catalog, name: str) -> list[str]:
    """What building a crew.py project's crew finds wrong (an import error, a task with no agent), as a run would."""
    try:
        spec = catalog.crew(name)
        if as_built(spec, catalog) is None and any(t.agent is None for t in spec.tasks):
            return [f"{spec.source}: it defines no @CrewBase class, so its tasks.yaml is its crew, and a task there names no agent."]
    except (UsageError, ConfigError) as exc:
        return [exc.message]
    return []
