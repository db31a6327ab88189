"""The plan of a run: a crew with its inputs filled in and a model routed to every agent.

Making a plan calls no model, so ``run --dry-run`` shows it with no API key at all. It imports no CrewAI, but for a
CrewAI project's crew: that is built as `crewai run` builds it, and the plan is taken from the crew built (the run
then runs that crew). The run engine builds CrewAI objects from the plan.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mamabear.config.answers import Answers
from mamabear.config.catalog import CREW_PY, AgentSpec, Catalog, CrewSpec, TaskSpec, ToolSpec, expand_tools
from mamabear.config.models import ModelTable, Route, tier_for
from mamabear.config.settings import Settings
from mamabear.config.toolset import ToolsConfig
from mamabear.errors import UsageError
from mamabear.sandbox.config import BACKENDS, SandboxConfig
from mamabear.tools.library import plan_tools


@dataclass(frozen=True)
class PlannedAgent:
    id: str
    role: str
    tier: str
    temperature: float
    route: Route
    tools: tuple[str, ...] = ()
    tool_route: Route | None = None  # its function_calling_llm, when it has one
    library: tuple[ToolSpec, ...] = ()  # its tools from outside the sandbox (crewai-tools, the project's, web), checked
    python_tools: tuple[str, ...] = ()  # the tools a CrewAI project's crew.py gave it (as named there)


@dataclass(frozen=True)
class SandboxPlan:
    """Where the crew's tools work: a backend and a session kind; the session starts at the first tool call."""

    backend: str
    kind: str
    session: str | None = None  # --session: work in this existing session
    reuse: bool = False  # take (or leave behind) a pooled session of the kind
    network: bool = True  # a new local session's commands reach the internet (the crew's or the kind's setting)


@dataclass(frozen=True)
class PlannedTask:
    position: int  # 1-based order in the crew
    id: str
    agent: str | None  # None: the manager assigns it (hierarchical)
    tier: str | None
    route: Route | None
    tools: tuple[str, ...] = ()  # the task's own tools, which replace its agent's for it
    library: tuple[ToolSpec, ...] = ()


@dataclass(frozen=True)
class Plan:
    crew: CrewSpec
    inputs: dict[str, str]
    agents: tuple[PlannedAgent, ...]  # one per (agent, tier) the tasks need, plus the manager
    tasks: tuple[PlannedTask, ...]
    manager: PlannedAgent | None
    sandbox: SandboxPlan | None = None  # None: no agent has a tool
    memory: str = "shared"  # shared | read_only | isolated | off (the crew's mode, or off by --no-memory)
    unpriced: tuple[str, ...] = ()  # routed models (fallbacks included) without a known price: their calls are shown as unpriced
    notes: tuple[str, ...] = ()  # what the configuration leaves out (a web group with no search key)
    asks_person: bool = False  # a task has human_input: CrewAI asks for feedback at the terminal
    answers: Answers | None = field(default=None, compare=False)  # --answers: the feedback comes from a file instead
    warnings: tuple[str, ...] = ()  # what mamabear leaves to CrewAI or ignores (a project's unknown key, an extra input)
    project: Any = field(default=None, compare=False, repr=False)  # engine.project.ProjectCrew: the crew a project built

    @property
    def models(self) -> list[str]:
        """Every model a run may call: each agent's routed model and its fallbacks."""
        return list(dict.fromkeys(m for a in self.agents if not a.route.problem for m in a.route.chain))

    @property
    def problems(self) -> list[str]:
        """Why some agent has no usable model (only a non-strict plan has any)."""
        return list(dict.fromkeys(a.route.problem for a in self.agents if a.route.problem))

    def to_dict(self) -> dict[str, Any]:
        def route(r: Route | None) -> dict[str, Any] | None:
            return None if r is None else {k: v for k, v in asdict(r).items() if v not in (None, ())}

        return {
            "crew": self.crew.name,
            "process": self.crew.process,
            "inputs": self.inputs,
            "manager": self.manager.id if self.manager else None,
            "problems": self.problems,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "unpriced": list(self.unpriced),
            "agents": [
                {
                    "id": a.id,
                    "role": a.role,
                    "tier": a.tier,
                    "temperature": a.temperature,
                    "model": a.route.model,
                    "route": route(a.route),
                    "tools": [*a.tools, *(t.name for t in a.library), *a.python_tools],
                }
                for a in self.agents
            ],
            "sandbox": asdict(self.sandbox) if self.sandbox else None,
            "memory": self.memory,
            "tasks": [{"position": t.position, "id": t.id, "agent": t.agent, "tier": t.tier, "model": t.route.model if t.route else None} for t in self.tasks],
        }


def resolve_inputs(crew: CrewSpec, given: dict[str, str], warnings: list[str] | None = None) -> dict[str, str]:
    """``warnings``: an input the crew does not use is warned about there (a CrewAI project's crew, as `crewai run`
    takes any) instead of refused."""
    declared = {i.name: i for i in crew.inputs}
    for key in given:
        if key not in declared and warnings is not None:
            warnings.append(f"-i {key}: crew '{crew.name}' uses no input '{key}'; it is passed to the crew as CrewAI would.")
        elif key not in declared:
            names = ", ".join(declared) or "none"
            raise UsageError(f"-i {key}: crew '{crew.name}' has no input '{key}'; its inputs are: {names}.")
    resolved: dict[str, str] = {}
    resolved.update({k: v for k, v in given.items() if k not in declared})
    for spec in crew.inputs:
        if spec.name in given:
            resolved[spec.name] = given[spec.name]
        elif spec.default is not None:
            resolved[spec.name] = spec.default
        elif spec.required:
            about = f" ({spec.description.rstrip('.')})" if spec.description else ""
            raise UsageError(f"crew '{crew.name}' needs input '{spec.name}'{about}; pass -i {spec.name}=VALUE.")
        else:
            resolved[spec.name] = ""
    return resolved


def plan_sandbox(crew: CrewSpec, config: SandboxConfig, settings: Settings) -> SandboxPlan:
    config.kind(crew.sandbox.kind)  # an unknown kind is an error now, not at the first tool call
    backend = config.choose_backend(settings, settings.sandbox or crew.sandbox.backend)
    reuse = config.reuse_by_kind if crew.sandbox.reuse is None else crew.sandbox.reuse
    network = config.network_for(crew.sandbox.kind, crew.sandbox.network)
    return SandboxPlan(backend=backend, kind=crew.sandbox.kind, session=settings.session, reuse=reuse, network=network)


def _sees(route: Route, tools: tuple[str, ...], table: ModelTable, agent_id: str, strict: bool) -> Route:
    """An agent with ``computer_use`` is shown screenshots: its model must take images."""
    if "computer_use" not in tools or route.problem or table.takes_images(route.model):
        return route
    why = (
        f"agent '{agent_id}' has the computer_use tool, which shows it screenshots, but its model {route.model} cannot take images; "
        "give it a model that can (--model, or its `llm`), list the model under `vision:` in config/models.yaml if it can, or take computer_use away"
    )
    if strict:
        raise UsageError(why + ".")
    return replace(route, problem=why)


def make_plan(
    catalog: Catalog,
    table: ModelTable,
    crew_name: str | CrewSpec,
    given: dict[str, str],
    settings: Settings,
    strict: bool = True,
    sandbox: SandboxConfig | None = None,
    answers: Answers | None = None,
) -> Plan:
    """``crew_name``: a crew of the catalog, or a crew made in code (a mission's team)."""
    crew = catalog.crew(crew_name) if isinstance(crew_name, str) else crew_name
    roots = catalog.roots  # every root: the project's tools.yaml holds for the packaged crews too
    warnings: list[str] = []
    project = None
    if crew.built_by_project and Path(crew.source).name == CREW_PY:  # a crew.jsonc's plan is its JSON: built at kickoff
        from mamabear.engine.project import as_built

        project = as_built(crew, catalog)
        if project is not None:
            crew, catalog = project.spec, catalog.adding(project.agents, project.tasks, crew.scope)
            warnings += catalog.ignored
            from mamabear.tools.library import unset_keys

            for agent in project.crew.agents:  # its tools made in crew.py: CrewAI makes them without their keys, as here
                for tool in agent.tools or []:
                    for key in unset_keys(tool, settings.env):
                        name = getattr(tool, "name", type(tool).__name__)
                        warnings.append(
                            f"{crew.source}: tool '{name}' of agent '{project.names[id(agent)]}' needs {key}, which is not set: its calls will fail."
                        )
        unassigned = [t.task for t in crew.tasks if t.agent is None]
        if crew.process == "sequential" and unassigned:
            raise UsageError(f"{crew.source}: task '{unassigned[0]}' has no agent; give it one in its tasks.yaml entry (agent: AGENT_ID) or in crew.py.")
    if crew.brings:
        catalog = catalog.adding({a.id: a for a in crew.brings}, {}, crew.scope)
    catalog = catalog.scoped(crew)
    # a flow's inputs are its initial state, whatever its fields: it takes them as they are
    inputs = dict(given) if crew.process == "flow" else resolve_inputs(crew, given, warnings if crew.built_by_project else None)
    specs: list[AgentSpec | TaskSpec] = [*(catalog.agent(a) for a in crew.agents), *(catalog.tasks[t.task] for t in crew.tasks)]
    for spec in specs:
        catalog.objects(spec)  # what the YAML names by import path exists and fits, before any model call
        if strict and spec.options.get("human_input") and answers is None and not sys.stdin.isatty():
            raise UsageError(
                f"{spec.source}: task '{spec.id}' asks a person to review its answer (human_input: true), and stdin is not a terminal; "
                "run it at a terminal, give the feedback with --answers FILE, or set human_input: false."
            )
    if strict and crew.asks and not sys.stdin.isatty():
        raise UsageError(
            f"{crew.source}: flow method '{crew.asks[0]}' asks a person (@human_feedback or self.ask()), and stdin is not a terminal; run it at a terminal."
        )
    if answers is not None:
        answers.check({t.task: catalog.tasks[t.task].source for t in crew.tasks if catalog.tasks[t.task].options.get("human_input")})
    if settings.sandbox is not None and settings.sandbox not in ("auto", *BACKENDS):  # said even when no agent has a tool
        raise UsageError(f"--sandbox {settings.sandbox} (or MAMABEAR_SANDBOX): the backends are {', '.join(BACKENDS)}.")
    agents: dict[tuple[str, str], PlannedAgent] = {}
    uses_tools = bool(crew.tools) or any(catalog.agent(a).tools for a in crew.agents) or any(catalog.tasks[t.task].tools for t in crew.tasks)
    if settings.session and not uses_tools:
        raise UsageError(f"--session {settings.session}: crew '{crew.name}' gives its agents no tools, so it works in no sandbox session.")
    sandbox_plan = plan_sandbox(crew, sandbox or SandboxConfig.load(catalog.roots), settings) if uses_tools else None
    tool_config = ToolsConfig.load(roots)

    def library(specs: tuple[ToolSpec, ...], owner: str) -> tuple[ToolSpec, ...]:
        return plan_tools(specs, tool_config, settings.env, roots, owner) if specs else ()

    def planned(agent_id: str, tier: str) -> PlannedAgent:
        if (agent_id, tier) not in agents:
            spec = catalog.agent(agent_id)
            tools = expand_tools(spec.tools + crew.tools, sandbox_plan.backend) if sandbox_plan else ()
            agents[(agent_id, tier)] = PlannedAgent(
                id=agent_id,
                role=spec.role,
                tier=tier,
                temperature=spec.temperature,
                route=_sees(table.route(tier, settings, pinned=spec.llm, strict=strict), tools, table, agent_id, strict),
                tools=tools,
                tool_route=table.route(tier, settings, pinned=spec.function_calling_llm, strict=strict) if spec.function_calling_llm else None,
                library=library(spec.library + crew.library, f"agent '{agent_id}'"),
                python_tools=project.tools.get(agent_id, ()) if project is not None else (),
            )
        return agents[(agent_id, tier)]

    manager = None
    if crew.manager:
        tier = catalog.agent(crew.manager).tier
        manager = agents[(crew.manager, tier)] = replace(planned(crew.manager, tier), tools=())  # CrewAI's managers only delegate
    if crew.process in ("hierarchical", "mission", "flow") or project is not None:
        # The manager (or a mission's plan) hands work to any crew agent, so each runs on its own tier; every agent of
        # a project's crew is built (and may be delegated to), so each has a model.
        for agent_id in crew.agents:
            if agent_id != crew.manager:
                planned(agent_id, catalog.agent(agent_id).tier)
    tasks = []
    for position, item in enumerate(crew.tasks, start=1):
        if item.agent is None:
            tasks.append(PlannedTask(position, item.task, None, None, None))
            continue
        spec = catalog.tasks[item.task]
        tier = tier_for(catalog.agent(item.agent).tier, spec.complexity)
        own_tools = expand_tools(spec.tools, sandbox_plan.backend) if sandbox_plan else ()
        own_library = library(spec.library, f"task '{spec.id}'")
        tasks.append(PlannedTask(position, item.task, item.agent, tier, planned(item.agent, tier).route, own_tools, own_library))
    from mamabear.llm.pricing import Pricer

    plan = Plan(
        crew=crew,
        inputs=inputs,
        agents=tuple(agents.values()),
        tasks=tuple(tasks),
        manager=manager,
        sandbox=sandbox_plan,
        memory="off" if settings.no_memory else crew.memory,
    )
    notes: tuple[str, ...] = ()
    if any(t.name == "web" for t in crew.library) or any(t.name == "web" for a in crew.agents for t in catalog.agent(a).library):
        if len(tool_config.web_group(settings.env)) == 1:
            notes = (f"the web group has no search tool: set one of {tool_config.search_keys()} to add one; until then it reads pages only.",)
    # a flow's question has no --answers form; a task's human_input is answered from the file when one is given
    asks = bool(crew.asks) or (answers is None and any(catalog.tasks[t.task].options.get("human_input") for t in crew.tasks))
    unpriced = tuple(Pricer.for_run(table, settings).unpriced(plan.models))
    if project is not None:
        notes += (f"built by its {Path(crew.source).name} in {project.seconds:.1f}s",)
    return replace(plan, unpriced=unpriced, notes=notes, asks_person=asks, answers=answers, warnings=tuple(warnings), project=project)
