"""Turn a plan into CrewAI objects: one Agent per (specialist, tier), Tasks, and the Crew.

The same plan also re-arms a crew restored from a checkpoint: checkpoints keep no
usable LLM (keys are redacted from them), so every agent gets its LLM again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mamabear.config.catalog import Catalog, TaskSpec, ToolSpec
from mamabear.config.models import COMPATIBLE, LOCAL_KEY, ModelTable, Route
from mamabear.config.settings import Settings
from mamabear.config.toolset import ToolsConfig
from mamabear.engine.plan import Plan, PlannedAgent

if TYPE_CHECKING:
    from mamabear.engine.link import SessionLink
    from mamabear.llm.resilience import CallControl


@dataclass
class Built:
    crew: Any  # crewai.Crew
    positions: dict[str, int]  # crewai task id -> position in the plan
    agents: dict[str, PlannedAgent]  # crewai agent id -> the planned agent it runs as


def _llm_kwargs(route: Route, temperature: float, settings: Settings, timeout_s: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": route.llm_model, "temperature": temperature, "timeout": timeout_s}
    if route.base_url:
        kwargs["base_url"] = route.base_url
        # A provider's key goes to its provider only: a --base-url server gets MAMABEAR_API_KEY, or a placeholder.
        kwargs["api_key"] = settings.api_key or LOCAL_KEY
    elif route.key_env:
        kwargs["api_key"] = settings.env[route.key_env]
    elif settings.replay:
        kwargs["api_key"] = LOCAL_KEY  # --replay: every answer comes from the recording; the client is never used
    if route.provider in (COMPATIBLE, "anthropic"):
        kwargs["max_retries"] = 0  # mamabear retries, visibly; the SDK would retry unseen
    if route.max_tokens is not None:
        # Every answer is capped. Gemini's class calls it max_output_tokens; OpenAI's reasoning models take only
        # max_completion_tokens, which an OpenAI-compatible server (llama.cpp, vLLM, Ollama) may not know.
        openai_own = route.provider == COMPATIBLE and not route.base_url
        name = "max_output_tokens" if route.provider == "gemini" else "max_completion_tokens" if openai_own else "max_tokens"
        kwargs[name] = route.max_tokens
    return kwargs


def make_llm(route: Route, temperature: float, settings: Settings, timeout_s: float) -> Any:
    """A plain CrewAI LLM for a route (its provider's native class)."""
    from crewai import LLM

    return LLM(**_llm_kwargs(route, temperature, settings, timeout_s))


def make_resilient_llm(route: Route, temperature: float, settings: Settings, models: ModelTable, control: CallControl, serves: str | None = None) -> Any:
    """The route's LLM with retries, backoff, fallback to the route's other models, and the run's guard, whatever the
    route: a native CrewAI class or LiteLLM. ``serves``: the specialist it is made for (its side calls are its)."""
    from crewai import LLM

    from mamabear.compat.crewai import resolve_route
    from mamabear.llm.resilience import resilient_class

    timeout_s = models.retry.timeout_s
    kwargs = _llm_kwargs(route, temperature, settings, timeout_s)
    model = kwargs.pop("model")
    target = resolve_route(model, kwargs)
    if target.native_class is None:  # a LiteLLM-only model (groq/, mistral/, xai/ ...): CrewAI's LiteLLM class, guarded the same
        llm = resilient_class(LLM)(model=model, **kwargs)
    else:
        if target.custom_openai:
            kwargs["custom_openai"] = True
        llm = resilient_class(target.native_class)(model=target.model, provider=target.provider, **kwargs)
    fallbacks = [(m, partial(make_llm, models.fallback_route(route, m, settings), temperature, settings, timeout_s)) for m in route.fallbacks]
    llm.configure(control, route.model, fallbacks, serves)
    return llm


class AgentParts:
    """Builds every agent's LLM and sandbox tools for one run."""

    def __init__(
        self, plan: Plan, settings: Settings, models: ModelTable, control: CallControl, link: SessionLink | None = None, roots: list[Path] | None = None
    ) -> None:
        self.plan, self.settings, self.models, self.control, self.link = plan, settings, models, control, link
        self.roots = roots or []  # where a project's own tools are imported from
        self.memory: Any = None  # the crew's shared memory, or None when memory is off
        self._tool_config: ToolsConfig | None = None

    def llm(self, planned: PlannedAgent) -> Any:
        return make_resilient_llm(planned.route, planned.temperature, self.settings, self.models, self.control, planned.id)

    def tools(self, planned: PlannedAgent, library: tuple[ToolSpec, ...] | None = None) -> list[Any]:
        """The agent's sandbox tools, then its other tools (``library``: a task's own, instead of the agent's)."""
        made: list[Any] = []
        if planned.tools and self.link is not None:
            from mamabear.sandbox.tools import make_tools

            made += make_tools(planned.tools, self.link, planned.id)
        specs = [s for s in (planned.library if library is None else library) if not s.name.startswith("mcp:")]
        if specs:
            from mamabear.tools.library import make_tool

            made += [make_tool(spec, self.tool_config(), self.roots, self.settings.env, self.control.guard) for spec in specs]
        return made

    def mcps(self, planned: PlannedAgent) -> list[Any]:
        """The MCP servers the agent has, as CrewAI's server configs (CrewAI starts and stops them)."""
        from mamabear.tools.mcp import server_config

        servers = [s.name[4:] for s in planned.library if s.name.startswith("mcp:")]
        log = self.settings.home / "logs" / "mcp.log"
        return [server_config(self.tool_config().mcp_servers[name], self.settings.env, log) for name in servers]

    def tool_config(self) -> ToolsConfig:
        if self._tool_config is None:
            self._tool_config = ToolsConfig.load(self.roots)
        return self._tool_config

    def reattach(self, crew: Any, catalog: Catalog) -> Built:
        """Give a crew restored from a checkpoint its LLMs back, its tools, and the code its YAML names (callbacks,
        guardrails, output models, MCP servers: never written in a checkpoint); agents and tasks keep the plan's order."""
        workers = [a for a in self.plan.agents if a is not self.plan.manager]
        if len(crew.agents) != len(workers) or len(crew.tasks) != len(self.plan.tasks):
            from mamabear.errors import UsageError

            raise UsageError(
                f"the checkpoint does not match crew '{self.plan.crew.name}' as configured now "
                f"({len(crew.tasks)} tasks saved, {len(self.plan.tasks)} configured); restore the crew's YAML to resume."
            )
        agents: dict[str, PlannedAgent] = {}
        pairs = list(zip(crew.agents, workers, strict=True))
        if self.plan.manager is not None and crew.manager_agent is not None:
            pairs.append((crew.manager_agent, self.plan.manager))
        catalog = catalog.scoped(self.plan.crew)
        for agent, planned in pairs:
            agent.llm = self.llm(planned)
            for key, value in catalog.objects(catalog.agent(planned.id)).items():
                setattr(agent, key, value)
            if planned.tool_route is not None:
                agent.function_calling_llm = make_resilient_llm(planned.tool_route, planned.temperature, self.settings, self.models, self.control, planned.id)
            if agent is not crew.manager_agent:
                agent.tools = self.tools(planned)  # the checkpoint's copies have no session
                agent.mcps = self.mcps(planned) or None
            agent.max_retry_limit = self.models.retry.task_retries
            agents[str(agent.id)] = planned
        crew.memory = self.memory or False  # checkpoints keep no memory (see memory/shared.py)
        crew.create_crew_memory()
        by_agent: dict[tuple[str, str | None], PlannedAgent] = {(p.id, p.tier): p for p in self.plan.agents}
        for task, planned_task in zip(crew.tasks, self.plan.tasks, strict=True):
            spec = catalog.tasks[planned_task.id]
            for key, value in task_options(catalog, spec).items():
                if key not in ("name", "tools"):
                    setattr(task, key, value)
            task.ensure_guardrail_is_callable()  # CrewAI makes a guardrail (a function or a text for an LLM) usable here
            if (planned_task.tools or planned_task.library) and planned_task.agent is not None:
                own = replace(by_agent[(planned_task.agent, planned_task.tier)], tools=planned_task.tools)
                task.tools = self.tools(own, planned_task.library)
            elif task.tools:  # CrewAI copied the agent's tools onto the task; those copies have no session either
                task.tools = list(task.agent.tools or []) if task.agent is not None else []
        guard_side_calls(crew)
        positions = {str(task.id): planned.position for task, planned in zip(crew.tasks, self.plan.tasks, strict=True)}
        return Built(crew=crew, positions=positions, agents=agents)


def guard_side_calls(crew: Any) -> None:
    """Every model a crew's tasks call besides their agents' own turns goes through the agent's guarded LLM: a
    guardrail written as text holds the LLM its agent had when the task was made (a project's crew.py makes it
    before mamabear routes the agent), which would call its provider unguarded and unrecorded. (A conversion to
    ``output_pydantic`` or ``output_json`` and a knowledge query use the agent's LLM at call time: see
    ``compat.crewai.apply_conversion_patch``.)"""
    from mamabear.compat.crewai import llm_guardrails

    for task in crew.tasks:
        if task.agent is not None:
            for guardrail in llm_guardrails(task):
                guardrail.llm = task.agent.llm


def make_agent(catalog: Catalog, parts: AgentParts, planned: PlannedAgent, manager: bool = False, tools: bool = True, **overrides: Any) -> Any:
    """The CrewAI Agent of a planned specialist, with its routed LLM and its sandbox tools (a manager: delegation only;
    ``tools=False``: none, for a step that only thinks, such as a mission's planning and judging). ``overrides``: Agent
    fields a caller sets over the YAML's (a mission item's ``max_iter``)."""
    from crewai import Agent

    spec = catalog.agent(planned.id)
    options = {"verbose": False, "allow_delegation": False, "max_retry_limit": parts.models.retry.task_retries, **spec.options, **catalog.objects(spec)}
    if planned.tool_route is not None:
        options["function_calling_llm"] = make_resilient_llm(planned.tool_route, planned.temperature, parts.settings, parts.models, parts.control, planned.id)
    if manager:
        options["allow_delegation"] = True  # and no tools: CrewAI refuses a manager that has any
    elif tools:
        options["tools"] = parts.tools(planned)
        if any(s.name.startswith("mcp:") for s in planned.library):
            options["mcps"] = parts.mcps(planned)
    return Agent(role=spec.role, goal=spec.goal, backstory=spec.backstory, llm=parts.llm(planned), **{**options, **overrides})


def task_options(catalog: Catalog, spec: TaskSpec) -> dict[str, Any]:
    """A task's CrewAI fields from its YAML: as written, and the objects it names (its callbacks made one callback)."""
    options = {"name": spec.id, **spec.options, **catalog.objects(spec)}
    callbacks = options.pop("callbacks", None)
    if callbacks:
        every = [options["callback"], *callbacks] if options.get("callback") else callbacks

        def each(output: Any) -> None:
            for callback in every:
                callback(output)

        options["callback"] = each
    return options


def build(plan: Plan, catalog: Catalog, parts: AgentParts, checkpoint: Any = None) -> Built:
    from crewai import Crew, Process, Task

    catalog = catalog.scoped(plan.crew)
    make = partial(make_agent, catalog, parts)

    by_planned: dict[tuple[str, str | None], Any] = {}
    by_agent: dict[tuple[str, str | None], PlannedAgent] = {}
    agent_map: dict[str, PlannedAgent] = {}
    for planned in plan.agents:
        if plan.manager is not None and planned is plan.manager:
            continue
        agent = make(planned)
        by_planned[(planned.id, planned.tier)] = agent
        by_agent[(planned.id, planned.tier)] = planned
        agent_map[str(agent.id)] = planned

    manager_agent = None
    if plan.manager is not None:
        manager_agent = make(plan.manager, manager=True)
        agent_map[str(manager_agent.id)] = plan.manager

    crew_tasks: list[Any] = []
    by_id: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for planned_task in plan.tasks:
        spec = catalog.tasks[planned_task.id]
        agent = by_planned[(planned_task.agent, planned_task.tier)] if planned_task.agent else None
        options = task_options(catalog, spec)
        if spec.options.get("human_input") and agent is not None:
            agent.verbose = True  # CrewAI shows the answer it then asks a person about only for a verbose agent
        if (planned_task.tools or planned_task.library) and planned_task.agent is not None:
            own = replace(by_agent[(planned_task.agent, planned_task.tier)], tools=planned_task.tools)
            options["tools"] = parts.tools(own, planned_task.library)
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
        checkpoint=checkpoint,
        memory=parts.memory or False,
    )
    guard_side_calls(crew)
    return Built(crew=crew, positions=positions, agents=agent_map)


def build_project(plan: Any, parts: Any, checkpoint: Any = None) -> Any:
    """The crew the project built (``plan.project``), each agent on its routed model with its YAML's tools added, the
    manager of a hierarchical crew on its own."""
    project = plan.project  # engine.project.ProjectCrew
    crew = project.crew
    planned_by_id = {p.id: p for p in reversed(plan.agents)}  # an agent on several tiers: its first
    agents = {}
    for agent in crew.agents:
        planned = planned_by_id[project.names[id(agent)]]
        agent.llm = parts.llm(planned)
        agent.max_retry_limit = parts.models.retry.task_retries
        mine = {spec.name for spec in planned.library}  # its crewai-tools classes: made by mamabear, with its limits and keys
        agent.tools = [*(t for t in agent.tools or [] if type(t).__name__ not in mine), *parts.tools(planned)]
        agents[str(agent.id)] = planned
    if plan.manager is not None:  # CrewAI's managers only delegate: their tools stay the crew's delegation tools
        crew.manager_agent.llm = crew.manager_llm = parts.llm(plan.manager)
        crew.manager_agent.max_retry_limit = parts.models.retry.task_retries
        agents[str(crew.manager_agent.id)] = plan.manager
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
