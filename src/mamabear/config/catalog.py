"""The catalog: agents, tasks and crews read from YAML into validated specs.

The YAML follows CrewAI's own project schema (``agents.yaml``, ``tasks.yaml``), with
a few additions: an agent's ``tier`` and ``temperature``, a task's ``complexity``,
and crew files under ``crews/``. Packaged defaults are read first; a project
directory's ``config/`` and ``crews/`` override them entry by entry.
Every error names the file and line at fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mamabear.config import json_crew, yamlfile
from mamabear.config.refs import Ref
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError, NotFound, UsageError

TIERS = ("fast", "balanced", "pro")
MEMORY_MODES = ("shared", "read_only", "isolated", "off")
PROCESSES = ("sequential", "hierarchical")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# CrewAI's own YAML schema for agents.yaml and tasks.yaml (crewai.project.crew_base.AgentConfig and TaskConfig;
# tests/test_compat.py holds these equal to them, so the list cannot drift from the pinned CrewAI).
CREWAI_AGENT_KEYS = frozenset(
    "agent_knowledge_context allow_code_execution allow_delegation backstory cache cache_handler callbacks code_execution_mode "
    "crew_knowledge_context date_format embedder from_repository function_calling_llm goal guardrail guardrail_max_retries "
    "inject_date knowledge_config knowledge_search_query knowledge_sources knowledge_storage llm max_iter max_reasoning_attempts "
    "max_retry_limit max_rpm max_tokens multimodal prompt_template reasoning respect_context_window response_template role "
    "step_callback system_template tools use_system_prompt verbose".split()
)
CREWAI_TASK_KEYS = frozenset(
    "agent allow_crewai_trigger_context async_execution callback callbacks context create_directory description expected_output "
    "guardrail guardrail_max_retries human_input markdown name output_file output_json output_pydantic tools".split()
)
# Fields of CrewAI's Agent and Task models that its YAML template leaves out, taken as well (and checked to exist).
AGENT_FIELDS = frozenset({"max_execution_time", "memory", "planning"})
TASK_FIELDS = frozenset({"max_retries", "config", "converter_cls"})
# Keys whose values name Python objects by import path (package.module:Name); lists for the plural ones.
AGENT_REFS = frozenset({"step_callback", "cache_handler", "callbacks", "knowledge_sources"})
TASK_REFS = frozenset({"callback", "callbacks", "output_json", "output_pydantic", "converter_cls"})
LIST_REFS = frozenset({"callbacks", "knowledge_sources"})
_IMPORT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")  # a guardrail written so is a function; other text is for an LLM

# The sandbox tools an agent can be given (``tools:``), and the groups that name several.
FILE_TOOLS = ("file_view", "file_create", "file_str_replace", "file_insert")
BROWSER_TOOLS = ("browser_navigate", "browser_screenshot")  # Scrapybara's browser, driven through its screen
LOCAL_BROWSER_TOOLS = ("browser_open", "browser_read", "browser_click", "browser_type", "browser_screenshot")  # Chromium in the jail
SCREEN_TOOLS = ("computer_use",)  # the screen, mouse and keyboard, screenshots shown to the model: named on its own
GROUPS_ON = {  # what a group gives on each backend: its own browser; the computer group has Scrapybara's screen browser
    "scrapybara": {"files": FILE_TOOLS, "browser": BROWSER_TOOLS, "computer": ("bash", *FILE_TOOLS, *BROWSER_TOOLS)},
    "local": {"files": FILE_TOOLS, "browser": LOCAL_BROWSER_TOOLS, "computer": ("bash", *FILE_TOOLS)},
}
TOOL_GROUPS = {name: tuple(dict.fromkeys(t for groups in GROUPS_ON.values() for t in groups[name])) for name in GROUPS_ON["scrapybara"]}
TOOLS = tuple(dict.fromkeys((*TOOL_GROUPS["computer"], *LOCAL_BROWSER_TOOLS, *SCREEN_TOOLS)))
ONLY_ON = {  # tools only one backend has
    **{t: "scrapybara" for t in (*BROWSER_TOOLS, *SCREEN_TOOLS) if t not in LOCAL_BROWSER_TOOLS},
    **{t: "local" for t in LOCAL_BROWSER_TOOLS if t not in BROWSER_TOOLS},
}
LIBRARY_GROUPS = ("web",)  # a search tool chosen by which key is set, and a page reader (config/tools.yaml)
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
_MCP = re.compile(r"mcp:[A-Za-z0-9_.-]+")  # an MCP server of config/tools.yaml


@dataclass(frozen=True)
class ToolSpec:
    """A tool named in YAML that is not one of the sandbox's: a crewai-tools class (``SerperDevTool``), a project's
    tool by import path (``myproject.tools:search``), or the ``web`` group; with its arguments and where it was named."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass(frozen=True)
class AgentSpec:
    id: str
    role: str
    goal: str
    backstory: str
    tier: str = "balanced"
    temperature: float = 0.5
    llm: str | None = None  # an explicit model id, as CrewAI's YAML allows
    tools: tuple[str, ...] = ()  # sandbox tools and groups
    library: tuple[ToolSpec, ...] = ()  # crewai-tools, a project's own tools, the web group
    options: dict[str, Any] = field(default_factory=dict)  # CrewAI Agent fields passed through as written
    refs: tuple[Ref, ...] = ()  # CrewAI Agent fields that name Python objects
    function_calling_llm: str | None = None  # a model id for its tool calls
    source: str = ""
    text_sources: tuple[str, str, str] = ("", "", "")  # where its role, goal and backstory are written

    def placeholder_source(self, name: str) -> str:
        """file:line of the first text that uses {name}."""
        return _first_use(name, (self.role, self.goal, self.backstory), self.text_sources) or self.source


@dataclass(frozen=True)
class TaskSpec:
    id: str
    description: str
    expected_output: str
    agent: str | None = None
    context: tuple[str, ...] = ()
    complexity: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # CrewAI Task fields passed through as written
    refs: tuple[Ref, ...] = ()  # CrewAI Task fields that name Python objects
    tools: tuple[str, ...] = ()  # the task's own tools (CrewAI: they replace the agent's for this task)
    library: tuple[ToolSpec, ...] = ()
    source: str = ""
    text_sources: tuple[str, str] = ("", "")  # where its description and its expected_output are written

    def placeholder_source(self, name: str) -> str:
        """file:line of the first text that uses {name}."""
        return _first_use(name, (self.description, self.expected_output), self.text_sources) or self.source


def _first_use(name: str, texts: tuple[str, ...], sources: tuple[str, ...]) -> str | None:
    return next((where for text, where in zip(texts, sources, strict=True) if "{" + name + "}" in text and where), None)


@dataclass(frozen=True)
class InputSpec:
    name: str
    description: str = ""
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class CrewTask:
    task: str
    agent: str | None  # the crew's override or the task's own; None: the manager assigns it


@dataclass(frozen=True)
class SandboxSpec:
    """A crew's ``sandbox:``: the kind of session its tools work in, and optionally a backend and pooling."""

    kind: str = "development"
    backend: str | None = None
    reuse: bool | None = None  # None: config/sandbox.yaml's reuse_by_kind
    network: bool | None = None  # None: the kind's network setting in config/sandbox.yaml


@dataclass(frozen=True)
class CrewSpec:
    name: str
    description: str
    process: str
    agents: tuple[str, ...]
    tasks: tuple[CrewTask, ...]
    inputs: tuple[InputSpec, ...]
    manager: str | None = None
    memory: str = "shared"  # shared | read_only (recall, never save) | isolated (only its own scope) | off
    tools: tuple[str, ...] = ()  # given to every agent of the crew
    library: tuple[ToolSpec, ...] = ()
    sandbox: SandboxSpec = field(default_factory=SandboxSpec)
    source: str = ""
    scope: int = -1  # the root its file is in (it sees that root's agents and tasks, and those below); -1: every root
    brings: tuple[AgentSpec, ...] = ()  # agents of its own, in no agents.yaml (a flow's: what its crews' agents run as)
    asks: tuple[str, ...] = ()  # a flow's methods that ask a person (@human_feedback, self.ask())

    @property
    def built_by_project(self) -> bool:
        """A CrewAI project's crew: its crew.py or CrewAI's loader of its crew.jsonc builds it (the plan comes from its
        YAML or JSON)."""
        return Path(self.source).name in (CREW_PY, *json_crew.CREW_FILES)


def packaged_root() -> Path:
    """Where the default config/ and crews/ live: inside the wheel, or the source checkout."""
    package = Path(__file__).resolve().parents[1]  # src/mamabear (or mamabear/ in the wheel)
    bundled = package / "_defaults"
    if (bundled / "config").is_dir():
        return bundled
    return package.parents[1]


def search_roots(project_dir: Path | None) -> list[Path]:
    """Directories holding config/ and/or crews/, lowest precedence first: the packaged defaults, a CrewAI project's
    ``src/<package>/`` (its config/agents.yaml and tasks.yaml, as ``crewai create crew`` lays them out), the project."""
    roots = [packaged_root()]
    if project_dir is not None and project_dir.resolve() != roots[0].resolve():
        roots += [agents.parent.parent for agents in sorted(project_dir.glob("src/*/config/agents.yaml"))[:1]]
        if script_project(project_dir) is None:  # a script's config/ is its own, read by its script: not mamabear's
            roots.append(project_dir)
    return roots


MAMABEAR_ONLY = ("models.yaml", "sandbox.yaml", "tools.yaml", "memory.yaml", "missions.yaml", "privacy.yaml")
SCRIPTS = ("main.py", "agents.py", "tasks.py", "crew.py")


def script_project(root: Path) -> Path | None:
    """The script of a CrewAI project that builds and kicks off its crew in plain Python at its root (main.py,
    agents.py, tasks.py, no @CrewBase package): its config/ is the script's. None when ``root`` is not one: it has
    crews/, a file only mamabear reads in config/, or no such script."""
    if (root / "crews").is_dir() or any((root / "config" / name).is_file() for name in MAMABEAR_ONLY):
        return None
    found = [root / name for name in SCRIPTS if (root / name).is_file()]
    if not found or any(root.glob("src/*/crew.py")) or any(root.glob("src/*/main.py")):
        return None
    return found[0]


CREW_PY = "crew.py"


def crewai_package(root: Path) -> bool:
    """Whether ``root`` is a CrewAI project's package (``src/<package>/`` with config/tasks.yaml and crew.py)."""
    return root.parent.name == "src" and (root / "config" / "tasks.yaml").is_file() and (root / CREW_PY).is_file()


# ---------------------------------------------------------------- field helpers


def _text(entry: YamlMapping, key: str, what: str, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{entry.where()}: {what} has no '{key}'; add one.")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must be text.")
    return str(value).strip()


def _id_list(entry: YamlMapping, key: str, what: str) -> tuple[str, ...]:
    value = entry.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must be a list of names.")
    return tuple(value)


def _tool_list(entry: YamlMapping, what: str) -> tuple[tuple[str, ...], tuple[ToolSpec, ...]]:
    """The entry's ``tools:``: the sandbox tools and groups it names, and the other tools (by class, import path or group)."""
    value = entry.get("tools") or []
    where = entry.where("tools")
    if not isinstance(value, list):
        value = [value]
    sandbox: list[str] = []
    library: list[ToolSpec] = []
    for item in value:
        if isinstance(item, YamlMapping):
            known_keys(item, {"tool", "args"}, f"a tool of {what}")
            name, args = item.get("tool"), item.get("args") or YamlMapping()
            if not isinstance(args, YamlMapping):
                raise ConfigError(f"{item.where('args')}: the args of tool '{name}' of {what} must be a mapping of argument names to values.")
            if isinstance(name, str) and (name in TOOLS or name in TOOL_GROUPS or name in LIBRARY_GROUPS):
                raise ConfigError(f"{item.where('args')}: tool '{name}' of {what} takes no args; name it alone.")
            item_where, args = item.where(), dict(args)
        else:
            name, args, item_where = item, {}, where
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{item_where}: each tool of {what} is a name, or a mapping with 'tool' and 'args'.")
        if name in TOOLS or name in TOOL_GROUPS:
            sandbox.append(name)
        elif name in LIBRARY_GROUPS or _CLASS_NAME.fullmatch(name) or _IMPORT_PATH.fullmatch(name) or _MCP.fullmatch(name):
            library.append(ToolSpec(name, args, item_where))
        else:
            known = ", ".join([*TOOLS, *TOOL_GROUPS, *LIBRARY_GROUPS])
            raise ConfigError(
                f"{item_where}: {what} names unknown tool '{name}'; use one of: {known}, a crewai-tools class such as SerperDevTool, "
                "a tool of your project as package.module:name, or an MCP server as mcp:NAME."
            )
    return tuple(sandbox), tuple(library)


def expand_tools(names: tuple[str, ...], backend: str) -> tuple[str, ...]:
    """Groups spelled out, duplicates dropped; a backend's own tools (its browser, its screen) only on it."""
    groups = GROUPS_ON.get(backend, TOOL_GROUPS)
    tools = [t for name in names for t in groups.get(name, (name,))]
    return tuple(t for t in dict.fromkeys(tools) if ONLY_ON.get(t, backend) == backend)


def _sandbox(doc: YamlMapping, what: str) -> SandboxSpec:
    value = doc.get("sandbox")
    if value is None:
        return SandboxSpec()
    if isinstance(value, str):
        return SandboxSpec(kind=value)
    if not isinstance(value, YamlMapping):
        raise ConfigError(f"{doc.where('sandbox')}: 'sandbox' of {what} is a kind (research, development, ...) or a mapping.")
    known_keys(value, {"kind", "backend", "reuse", "network"}, f"the sandbox of {what}")
    backend = value.get("backend")
    if backend not in (None, "local", "scrapybara"):
        raise ConfigError(f"{value.where('backend')}: sandbox backend of {what} must be local or scrapybara.")
    reuse = value.get("reuse")
    if reuse is not None and not isinstance(reuse, bool):
        raise ConfigError(f"{value.where('reuse')}: sandbox 'reuse' of {what} must be true or false.")
    network = value.get("network")
    if network is not None and not isinstance(network, bool):
        raise ConfigError(f"{value.where('network')}: sandbox 'network' of {what} must be true or false.")
    return SandboxSpec(kind=str(value.get("kind", "development")), backend=backend, reuse=reuse, network=network)


def _mapping(value: Any, path: Path, what: str) -> YamlMapping:
    if value is None:
        empty = YamlMapping()
        empty.path, empty.line, empty.key_lines = path, 1, {}
        return empty
    if not isinstance(value, YamlMapping):
        raise ConfigError(f"{path}:1: {what} must be a mapping of names to entries.")
    return value


def _entry(entries: YamlMapping, key: str, what: str) -> YamlMapping:
    value = entries[key]
    if not isinstance(value, YamlMapping):
        raise ConfigError(f"{entries.where(key)}: {what} '{key}' must be a mapping of fields.")
    return value


# ---------------------------------------------------------------- parsers


def parse_agent(agent_id: str, entry: YamlMapping, warn: Callable[[str], None] | None = None) -> AgentSpec:
    """``warn``: a CrewAI project's entry, whose keys mamabear does not know are warned about and left to CrewAI."""
    what = f"agent '{agent_id}'"
    unknown = known_keys(entry, CREWAI_AGENT_KEYS | AGENT_FIELDS | {"tier", "temperature"}, what, warn)
    tier = entry.get("tier", "balanced")
    if tier not in TIERS:
        raise ConfigError(f"{entry.where('tier')}: tier '{tier}' of {what} is not one of {', '.join(TIERS)}.")
    temperature = entry.get("temperature", 0.5)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ConfigError(f"{entry.where('temperature')}: temperature of {what} must be a number from 0 to 2.")
    own = {"role", "goal", "backstory", "tier", "temperature", "llm", "tools", "function_calling_llm", *unknown}
    options, refs = _fields(entry, own, AGENT_REFS, what)
    tools, library = _tool_list(entry, what)
    return AgentSpec(
        id=agent_id,
        role=_text(entry, "role", what) or "",
        goal=_text(entry, "goal", what) or "",
        backstory=_text(entry, "backstory", what) or "",
        tier=tier,
        temperature=float(temperature),
        llm=_text(entry, "llm", what, required=False),
        tools=tools,
        library=library,
        options=options,
        refs=refs,
        function_calling_llm=_text(entry, "function_calling_llm", what, required=False),
        source=entry.where(),
        text_sources=(entry.where("role"), entry.where("goal"), entry.where("backstory")),
    )


def _fields(entry: YamlMapping, own: set[str], ref_keys: frozenset[str], what: str) -> tuple[dict[str, Any], tuple[Ref, ...]]:
    """The entry's CrewAI fields that mamabear does not read itself: passed through as written, or named objects."""
    options: dict[str, Any] = {}
    refs: list[Ref] = []
    for key in entry:
        if key in own:
            continue
        value = entry[key]
        if key in ref_keys or (key == "guardrail" and isinstance(value, str) and _IMPORT_PATH.fullmatch(value.strip())):
            values = value if isinstance(value, list) and key in LIST_REFS else [value]
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                form = "a list of import paths" if key in LIST_REFS else "an import path"
                raise ConfigError(f"{entry.where(key)}: '{key}' of {what} must be {form}, such as myproject.module:Name.")
            refs += [Ref(key, v.strip(), entry.where(key)) for v in values]
        else:
            options[key] = value
    return options, tuple(refs)


def parse_task(task_id: str, entry: YamlMapping, warn: Callable[[str], None] | None = None) -> TaskSpec:
    what = f"task '{task_id}'"
    unknown = known_keys(entry, CREWAI_TASK_KEYS | TASK_FIELDS | {"complexity"}, what, warn)
    complexity = entry.get("complexity")
    if complexity is not None and (isinstance(complexity, bool) or not isinstance(complexity, int) or not 1 <= complexity <= 10):
        raise ConfigError(f"{entry.where('complexity')}: complexity of {what} must be a whole number from 1 to 10.")
    options, refs = _fields(entry, {"description", "expected_output", "agent", "context", "complexity", "tools", *unknown}, TASK_REFS, what)
    tools, library = _tool_list(entry, what)
    return TaskSpec(
        id=task_id,
        description=_text(entry, "description", what) or "",
        expected_output=_text(entry, "expected_output", what) or "",
        agent=_text(entry, "agent", what, required=False),
        context=_id_list(entry, "context", what),
        complexity=complexity,
        options=options,
        refs=refs,
        tools=tools,
        library=library,
        source=entry.where(),
        text_sources=(entry.where("description"), entry.where("expected_output")),
    )


def _parse_inputs(doc: YamlMapping, what: str) -> tuple[InputSpec, ...]:
    raw = doc.get("inputs") or []
    if not isinstance(raw, list):
        raise ConfigError(f"{doc.where('inputs')}: 'inputs' of {what} must be a list.")
    inputs = []
    for item in raw:
        if isinstance(item, str):
            item_map: dict[str, Any] = {"name": item}
            where = doc.where("inputs")
        elif isinstance(item, YamlMapping):
            known_keys(item, {"name", "description", "required", "default"}, f"an input of {what}")
            item_map, where = item, item.where()
        else:
            raise ConfigError(f"{doc.where('inputs')}: each input of {what} needs a name.")
        name = item_map.get("name")
        if not isinstance(name, str) or not _PLACEHOLDER.fullmatch("{" + name + "}"):
            raise ConfigError(f"{where}: an input of {what} needs a 'name' made of letters, digits and _.")
        default = item_map.get("default")
        inputs.append(
            InputSpec(
                name=name,
                description=str(item_map.get("description") or ""),
                required=bool(item_map.get("required", default is None)),
                default=None if default is None else str(default),
            )
        )
    return tuple(inputs)


def parse_crew(name: str, doc: Any, path: Path, agents: dict[str, AgentSpec], tasks: dict[str, TaskSpec], in_python: bool = False) -> CrewSpec:
    """``in_python``: a CrewAI project's crew, whose crew.py may give a task its agent (the plan then comes from the
    crew it builds, engine.project)."""
    doc = _mapping(doc, path, f"crew file {path.name}")
    what = f"crew '{name}'"
    known_keys(doc, {"name", "description", "process", "agents", "tasks", "manager", "inputs", "memory", "sandbox", "tools"}, what)
    process = doc.get("process", "sequential")
    if process not in PROCESSES:
        raise ConfigError(f"{doc.where('process')}: process '{process}' of {what} is not one of {', '.join(PROCESSES)}.")
    crew_agents = _id_list(doc, "agents", what)
    for agent_id in crew_agents:
        if agent_id not in agents:
            raise ConfigError(f"{doc.where('agents')}: {what} names unknown agent '{agent_id}'; known agents: {', '.join(agents)}.")
    manager = _text(doc, "manager", what, required=False)
    if process == "hierarchical":
        manager = manager or "scout_commander"
        if manager not in agents:
            raise ConfigError(f"{doc.where('manager')}: {what} names unknown manager agent '{manager}'.")
    elif manager:
        raise ConfigError(f"{doc.where('manager')}: {what} has a manager but its process is sequential; remove 'manager' or set process: hierarchical.")

    raw_tasks = doc.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise ConfigError(f"{doc.where('tasks')}: {what} needs a non-empty 'tasks' list.")
    crew_tasks: list[CrewTask] = []
    for item in raw_tasks:
        if isinstance(item, YamlMapping):
            known_keys(item, {"task", "agent"}, f"a task entry of {what}")
            task_id, agent_override, where = item.get("task"), item.get("agent"), item.where()
        else:
            task_id, agent_override, where = item, None, doc.where("tasks")
        if not isinstance(task_id, str) or task_id not in tasks:
            raise ConfigError(f"{where}: {what} names unknown task '{task_id}'; define it in config/tasks.yaml.")
        runs_on = agent_override or tasks[task_id].agent
        if runs_on is None and process == "sequential" and not in_python:
            raise ConfigError(
                f"{where}: task '{task_id}' in {what} has no agent; name one there, as "
                f"`- task: {task_id}` with `agent: AGENT_ID` on the next line (`mamabear agents list` shows the ids)."
            )
        if runs_on is not None and runs_on not in agents:
            raise ConfigError(f"{where}: task '{task_id}' in {what} names unknown agent '{runs_on}'.")
        if process == "sequential" and runs_on is not None and runs_on not in crew_agents:
            raise ConfigError(f"{where}: task '{task_id}' runs on agent '{runs_on}', which is not in the agents of {what}.")
        for ctx in tasks[task_id].context:
            if ctx not in [t.task for t in crew_tasks]:
                raise ConfigError(f"{where}: task '{task_id}' needs context from '{ctx}', which does not run before it in {what}.")
        crew_tasks.append(CrewTask(task=task_id, agent=runs_on))

    inputs = _parse_inputs(doc, what)
    declared = {i.name for i in inputs}
    texts: list[tuple[str, Any, str]] = [(f"task '{t.task}'", tasks[t.task], tasks[t.task].description + tasks[t.task].expected_output) for t in crew_tasks]
    for agent_id in dict.fromkeys([*crew_agents, *([manager] if manager else [])]):  # CrewAI fills agents' texts from the inputs too
        spec = agents[agent_id]
        texts.append((f"agent '{agent_id}'", spec, spec.role + spec.goal + spec.backstory))
    for who, spec, text in texts:
        for missing in sorted(set(_PLACEHOLDER.findall(text)) - declared):
            raise ConfigError(
                f"{spec.placeholder_source(missing) or doc.where('inputs')}: {who} uses {{{missing}}}, which {what} does not declare; "
                f"add `- name: {missing}` to its inputs in {doc.where('inputs')}, then run it with -i {missing}=VALUE."
            )
    tools, library = _tool_list(doc, what)
    memory = doc.get("memory", True)
    memory = {True: "shared", False: "off"}.get(memory, memory) if isinstance(memory, bool) else memory
    if memory not in MEMORY_MODES:
        raise ConfigError(f"{doc.where('memory')}: 'memory' of {what} must be true, false, read_only or isolated.")
    return CrewSpec(
        name=name,
        description=_text(doc, "description", what, required=False) or "",
        process=process,
        agents=crew_agents,
        tasks=tuple(crew_tasks),
        inputs=inputs,
        manager=manager,
        memory=memory,
        tools=tools,
        library=library,
        sandbox=_sandbox(doc, what),
        source=str(path),
    )


# ---------------------------------------------------------------- the catalog


class Catalog:
    """Agents and tasks are read eagerly (small, needed by every command); crews on demand.

    Each root (the packaged defaults, then a project) is a scope: a crew sees the agents and tasks of its own
    root and the roots below it, the nearest winning. So a project's ``research_topic`` serves the project's
    crews, and the packaged ``research`` crew keeps its own; ``agents`` and ``tasks`` are the top scope.
    """

    def __init__(self, roots: list[Path], errors: list[str] | None = None) -> None:
        """``errors``: collect every broken file and entry there and go on (validate), instead of raising the first."""
        self.roots = roots
        self.errors = errors
        self.warnings: list[str] = []  # a project's entry that shadows a packaged one (its crews get the project's)
        self.ignored: list[str] = []  # keys of a CrewAI project's YAML that mamabear does not read (CrewAI does)
        self._agent_layers = self._layers("agents.yaml", parse_agent, "agent")
        self.agents: dict[str, AgentSpec] = _merged(self._agent_layers)
        self._task_layers: list[dict[str, TaskSpec]] | None = None
        self._tasks: dict[str, TaskSpec] | None = None

    def _problem(self, exc: ConfigError) -> None:
        if self.errors is None:
            raise exc
        self.errors.append(exc.message)

    def _layers(self, filename: str, parse: Any, what: str) -> list[dict[str, Any]]:
        """Each root's entries of ``filename``, parsed, lowest root first."""
        layers: list[dict[str, Any]] = []
        for root in self.roots:
            layer: dict[str, Any] = {}
            layers.append(layer)
            try:
                entries = _root_entries(root, filename)
            except ConfigError as exc:
                self._problem(exc)
                continue
            if entries is None:
                continue
            warn = self.ignored.append if crewai_package(root) else None  # CrewAI reads a project's files, not mamabear
            for key in entries:
                try:
                    layer[key] = parse(key, _entry(entries, key, what), warn)
                except ConfigError as exc:
                    self._problem(exc)
                    continue
                if any(key in lower for lower in layers[:-1]):
                    self.warnings.append(
                        f"{layer[key].source}: {what} '{key}' shadows the packaged one; this project's crews get it, the packaged crews keep theirs."
                    )
        return layers

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        if self._tasks is None:
            self._tasks = _merged(self._task_layer_list())
        return self._tasks

    def _task_layer_list(self) -> list[dict[str, TaskSpec]]:
        if self._task_layers is None:
            agents_broken = bool(self.errors)  # then "unknown agent" would only repeat that agents.yaml is broken
            self._task_layers = self._layers("tasks.yaml", parse_task, "task")
            for depth, layer in enumerate(self._task_layers, start=1):
                agents = _merged(self._agent_layers[:depth])  # a task names agents of its root or below
                for task in layer.values():
                    if task.agent and task.agent not in agents and not agents_broken:
                        self._problem(ConfigError(f"{task.source}: task '{task.id}' names unknown agent '{task.agent}'."))
        return self._task_layers

    def scoped(self, crew: CrewSpec) -> Catalog:
        """The catalog as ``crew`` sees it: the agents and tasks of its own root and those below."""
        depth = crew.scope + 1 if crew.scope >= 0 else len(self.roots)
        if depth >= len(self.roots):
            return self
        view = Catalog.__new__(Catalog)
        view.roots, view.errors, view.warnings, view.ignored = self.roots[:depth], self.errors, [], self.ignored
        view._agent_layers, view._task_layers = self._agent_layers[:depth], self._task_layer_list()[:depth]
        view.agents, view._tasks = _merged(view._agent_layers), _merged(view._task_layers)
        return view

    def adding(self, agents: dict[str, AgentSpec], tasks: dict[str, TaskSpec], scope: int) -> Catalog:
        """The catalog with the agents and tasks a CrewAI project made in Python (not in its YAML), in the layer of its
        root (``scope``)."""
        if not agents and not tasks:
            return self
        view = Catalog.__new__(Catalog)
        view.roots, view.errors, view.warnings, view.ignored = self.roots, self.errors, self.warnings, self.ignored
        at = scope if scope >= 0 else len(self.roots) - 1
        view._agent_layers = [{**layer, **agents} if i == at else layer for i, layer in enumerate(self._agent_layers)]
        view._task_layers = [{**layer, **tasks} if i == at else layer for i, layer in enumerate(self._task_layer_list())]
        view.agents, view._tasks = _merged(view._agent_layers), _merged(view._task_layers)
        return view

    def crew_files(self) -> dict[str, Path]:
        return {name: path for name, (path, _) in self._crew_files().items()}

    def _crew_files(self) -> dict[str, tuple[Path, int]]:
        files: dict[str, tuple[Path, int]] = {}
        for scope, root in enumerate(self.roots):
            if crewai_package(root):  # its crew is its tasks.yaml, in order, each on its own agent
                files[root.name] = (root / CREW_PY, scope)
            elif (json_file := json_crew.crew_file(root)) is not None:
                files[root.name] = (json_file, scope)
            crews_dir = root / "crews"
            if crews_dir.is_dir():
                for path in sorted(crews_dir.glob("*.y*ml")):
                    files[path.stem] = (path, scope)
        return files

    def crew(self, name: str) -> CrewSpec:
        files = self._crew_files()
        if name not in files:
            known = ", ".join(sorted(files)) or "none"
            raise NotFound(f"no crew named '{name}'{_did_you_mean(name, files)}; known crews: {known}.")
        path, scope = files[name]
        depth = scope + 1
        agents, tasks = _merged(self._agent_layers[:depth]), _merged(self._task_layer_list()[:depth])
        if path.name == CREW_PY:
            how = f"the CrewAI project {name}: its tasks.yaml, in order, built by its crew.py"
            doc = project_crew(self._task_layer_list()[scope], agents, path.parent / "config" / "tasks.yaml", how, own=list(self._agent_layers[scope]))
        elif path.name in json_crew.CREW_FILES:
            process, defaults, where = json_crew.crew_settings(path.parent)
            if process != "sequential":
                raise ConfigError(f"{where}: its crew is {process}; mamabear runs a {path.name} crew only sequentially (write crews/NAME.yaml for others).")
            doc = project_crew(self._task_layer_list()[scope], agents, path, f"the CrewAI project {name}: its {path.name}, in order", defaults)
        else:
            doc = yamlfile.load(path)
        return replace(parse_crew(name, doc, path, agents, tasks, in_python=path.name == CREW_PY), scope=scope)

    def objects(self, spec: AgentSpec | TaskSpec) -> dict[str, Any]:
        """The Python objects an agent's or a task's YAML names, by key (lists for callbacks, knowledge_sources)."""
        from mamabear.config.refs import project_path, resolve

        owner = f"{'agent' if isinstance(spec, AgentSpec) else 'task'} '{spec.id}'"
        found: dict[str, Any] = {}
        with project_path(self.roots):
            for ref in spec.refs:
                value = resolve(ref, owner)
                if ref.key in LIST_REFS:
                    found.setdefault(ref.key, []).append(value)
                else:
                    found[ref.key] = value
        return found

    def project_crew_name(self) -> str:
        """The crew to run when none is named: a CrewAI project's own (run at its root)."""
        names = [root.name for root in self.roots if crewai_package(root) or json_crew.crew_file(root)]
        if not names:
            raise UsageError(
                f"run needs a crew: {Path.cwd()} is neither a CrewAI project nor one of mamabear's; name a crew (`mamabear crews list` shows "
                "them), or run it at a CrewAI project's root; see `mamabear run --help`."
            )
        return names[0]

    def agent(self, agent_id: str) -> AgentSpec:
        if agent_id not in self.agents:
            raise NotFound(f"no agent named '{agent_id}'{_did_you_mean(agent_id, self.agents)}; known agents: {', '.join(self.agents)}.")
        return self.agents[agent_id]


def project_crew(
    tasks: dict[str, TaskSpec],
    agents: dict[str, AgentSpec],
    where: Path,
    description: str,
    defaults: dict[str, Any] | None = None,
    own: list[str] | None = None,
) -> YamlMapping:
    """The crew of a CrewAI project as its YAML or JSON describes it: every task in order, each on the agent it names,
    and an input for every {placeholder} (required unless ``defaults`` has it). ``own``: the project's agents, its
    crew's when no task names one (crew.py gives the tasks their agents)."""
    defaults = defaults or {}
    used = [a for a in dict.fromkeys(t.agent for t in tasks.values()) if a] or [a for a in own or [] if a in agents]
    texts = "".join(t.description + t.expected_output for t in tasks.values()) + "".join(
        agents[a].role + agents[a].goal + agents[a].backstory for a in used if a in agents
    )
    inputs = []
    for name in dict.fromkeys(_PLACEHOLDER.findall(texts)):
        item = YamlMapping(name=name, **({"default": defaults[name]} if name in defaults else {}))
        item.path, item.line, item.key_lines = where, 1, {}
        inputs.append(item)
    doc = YamlMapping(description=description, agents=used, tasks=list(tasks), inputs=inputs)
    doc.path, doc.line, doc.key_lines = where, 1, {}
    return doc


def placeholders(*texts: str) -> list[str]:
    """The {input} names the texts use, in order of first use."""
    return list(dict.fromkeys(_PLACEHOLDER.findall("".join(texts))))


def _root_entries(root: Path, filename: str) -> YamlMapping | None:
    """``config/FILENAME`` of a root, or the agents or tasks of a JSON crew project's files; None: it has none."""
    if json_crew.crew_file(root) is not None:
        return json_crew.agent_entries(root) if filename == "agents.yaml" else json_crew.task_entries(root)
    path = root / "config" / filename
    return _mapping(yamlfile.load(path), path, path.name) if path.is_file() else None


def _merged(layers: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def _did_you_mean(name: str, known: Any) -> str:
    from difflib import get_close_matches

    close = [k for k in known if k.startswith(name)] or get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate_all(roots: list[Path]) -> tuple[Catalog | None, list[str]]:
    """Load everything, collecting every broken file and entry instead of stopping at the first.

    Crews are checked once agents and tasks load cleanly (before that, each would only repeat their errors).
    """
    errors: list[str] = []
    catalog = Catalog(roots, errors)
    catalog.tasks  # noqa: B018 - loads and checks tasks.yaml
    if errors:
        return None, errors
    for name in catalog.crew_files():
        try:
            crew = catalog.crew(name)
        except ConfigError as exc:
            errors.append(exc.message)
            continue
        scope = catalog.scoped(crew)
        specs: list[AgentSpec | TaskSpec] = [*(scope.agents[a] for a in crew.agents), *(scope.tasks[t.task] for t in crew.tasks)]
        for spec in specs:
            try:
                scope.objects(spec)  # the user's modules are imported: what they name must exist
            except ConfigError as exc:
                if exc.message not in errors:
                    errors.append(exc.message)
    return catalog, errors
