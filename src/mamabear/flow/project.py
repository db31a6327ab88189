"""A CrewAI Flow project (`crewai create flow`), found at its root: ``pyproject.toml`` says ``[tool.crewai] type =
"flow"``, and its Flow class is the one the module of its ``kickoff`` script defines (``[project.scripts]``), or of
``src/PACKAGE/main.py``. Its plan is the flow's methods, in the order they are written, and the crews each starts,
as far as its source says without running it; each crew a method starts is routed and recorded as it starts."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from mamabear.config.catalog import AgentSpec, CrewSpec
from mamabear.config.refs import project_path
from mamabear.errors import UsageError

FLOW_AGENT = "flow_crews"  # the plan's one agent: what every agent of the flow's crews is routed as (its tier)
_CREW_CALL = re.compile(r"\b([A-Z]\w*Crew)\s*\(")
_ASKS = re.compile(r"\bself\.ask\s*\(")


@dataclass(frozen=True)
class FlowProject:
    root: Path
    name: str  # the project's name: the run's crew name
    module: str  # the module that defines its Flow class (its main.py)
    roots: tuple[Path, ...]  # what is importable while it runs: the project and its src/

    @property
    def source(self) -> Path:
        return self.root / "src" / Path(*self.module.split(".")).with_suffix(".py")


@dataclass(frozen=True)
class FlowMethod:
    name: str
    kind: str  # start | listen | router
    crews: tuple[str, ...]  # the crew classes its source starts (SomethingCrew(...))
    asks: bool = False  # it asks a person: @human_feedback, or self.ask() in its source


def flow_project(root: Path | None) -> FlowProject | None:
    """The flow project at ``root``, or None when it is not one."""
    if root is None or not (root / "pyproject.toml").is_file():
        return None
    pyproject = root / "pyproject.toml"
    try:
        doc = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{pyproject}: cannot be read as TOML ({exc}).") from exc
    project = doc.get("project", {}) or {}
    scripts = project.get("scripts", {}) or {}
    kind = (doc.get("tool", {}).get("crewai", {}) or {}).get("type")
    if kind != "flow" and not (kind is None and "kickoff" in scripts and "run_crew" not in scripts):
        return None  # a flow says so, or (made before CrewAI wrote the type) has a kickoff script and no run_crew
    entry = str(scripts.get("kickoff") or scripts.get("run_crew") or "")
    module = entry.split(":", 1)[0].strip()
    if not module:
        mains = sorted(root.glob("src/*/main.py"))
        if not mains:
            raise UsageError(f"{pyproject}: a CrewAI flow project, but it names no kickoff script in [project.scripts] and has no src/PACKAGE/main.py.")
        module = f"{mains[0].parent.name}.main"
    return FlowProject(root=root, name=str(project.get("name") or root.name), module=module, roots=(root,))


def flow_class(project: FlowProject) -> Any:
    """The project's Flow class: the one its module defines (or the one its kickoff() makes, when it defines several)."""
    from crewai.flow import Flow

    with project_path([Path("/"), *project.roots]):
        top = project.module.split(".")[0]
        for stale in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            sys.modules.pop(stale, None)  # read afresh: this process may have imported another project's, or an older file
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(project.module)
        except Exception as exc:  # noqa: BLE001 - the project's own module failed as it was imported
            raise UsageError(f"{project.source}: importing the flow's module {project.module} failed: {type(exc).__name__}: {exc}.") from exc
    found = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Flow) and v is not Flow and v.__module__ == module.__name__]
    if len(found) > 1 and callable(kickoff := getattr(module, "kickoff", None)):
        made = [cls for cls in found if re.search(rf"\b{cls.__name__}\s*\(", inspect.getsource(kickoff))]
        found = made or found
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise UsageError(f"{project.source}: mamabear runs the one Flow class a flow's main module defines; it defines {names}.")
    return found[0]


def flow_methods(cls: Any) -> list[FlowMethod]:
    """The flow's methods in the order they are written, each with the crews its source starts."""
    from crewai.flow.flow_wrappers import ListenMethod, RouterMethod, StartMethod

    from mamabear.compat.crewai import feedback_method

    methods = []
    for name, value in vars(cls).items():
        kind = (
            "router"
            if isinstance(value, RouterMethod)
            else "start"
            if isinstance(value, StartMethod)
            else "listen"
            if isinstance(value, ListenMethod)
            else None
        )
        if kind is None:
            continue
        try:
            source = inspect.getsource(value.unwrap())
        except (OSError, TypeError):
            source = ""
        asks = feedback_method(value) or bool(_ASKS.search(source))
        methods.append(FlowMethod(name, kind, tuple(dict.fromkeys(_CREW_CALL.findall(source))), asks))
    return methods


def flow_crew(project: FlowProject, cls: Any, methods: list[FlowMethod]) -> CrewSpec:
    """The run's crew for the flow (``methods``: its methods): its one agent is what its crews' agents are routed as."""
    shown = " → ".join(m.name + (f" ({', '.join(m.crews)})" if m.crews else "") for m in methods)
    agent = AgentSpec(id=FLOW_AGENT, role="the agents of the flow's crews", goal="", backstory="", source=str(project.source))
    spec = CrewSpec(
        name=project.name,
        description=f"the CrewAI flow {cls.__name__}: {shown}",
        process="flow",
        agents=(FLOW_AGENT,),
        tasks=(),
        inputs=(),
        memory="off",  # a flow's crews keep their own memory settings
        source=str(project.source),
        brings=(agent,),
        asks=tuple(m.name for m in methods if m.asks),
    )
    return spec
