"""Every tool an agent can be given, whether it can be used now, and who has it: what `mamabear tools` shows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mamabear.config.catalog import LIBRARY_GROUPS, ONLY_ON, SCREEN_TOOLS, TOOL_GROUPS, TOOLS, Catalog, ToolSpec
from mamabear.config.toolset import ToolsConfig
from mamabear.errors import ConfigError
from mamabear.tools.library import check, resolve, server_problem

SANDBOX_NOTE = "yes, in the run's sandbox session"
BROWSER_NOTE = "on the scrapybara backend only"
LOCAL_NOTE = "on the local backend only (Chromium in the jail)"
SCREEN_NOTE = "on the scrapybara backend, for a model that takes images"


def holders(catalog: Catalog) -> dict[str, list[str]]:
    """Tool name -> the agents, tasks and crews whose `tools:` name it."""
    named: dict[str, list[str]] = {}

    def add(names: list[str], who: str) -> None:
        for name in names:
            named.setdefault(name, []).append(who)

    for agent in catalog.agents.values():
        add([*agent.tools, *(t.name for t in agent.library)], f"agent {agent.id}")
    for task in catalog.tasks.values():
        add([*task.tools, *(t.name for t in task.library)], f"task {task.id}")
    for name in catalog.crew_files():
        try:
            crew = catalog.crew(name)
        except ConfigError:
            continue
        add([*crew.tools, *(t.name for t in crew.library)], f"crew {name}")
    return named


def inventory(catalog: Catalog, config: ToolsConfig, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per tool: its name, kind, whether it can be used now (or why not), and who has it."""
    who = holders(catalog)
    rows: list[dict[str, Any]] = []

    def row(name: str, kind: str, usable: str, detail: str = "") -> None:
        rows.append({"name": name, "kind": kind, "usable": usable, "detail": detail, "used_by": who.get(name, [])})

    for name in TOOLS:
        on = ONLY_ON.get(name)
        row(name, "sandbox", SCREEN_NOTE if name in SCREEN_TOOLS else BROWSER_NOTE if on == "scrapybara" else LOCAL_NOTE if on == "local" else SANDBOX_NOTE)
    for name, members in TOOL_GROUPS.items():
        row(name, "group", "each backend's own browser" if name == "browser" else SANDBOX_NOTE, ", ".join(members))
    web = config.web_group(env)
    search = f"search with {web[0]}" if len(web) > 1 else f"no search: set one of {config.search_keys()}"
    row("web", "group", "yes", f"{search}; pages with {config.reader}")
    from importlib.util import find_spec

    for s in config.search:
        usable = f"needs {s.key}" if not env.get(s.key) else f"needs the module {s.needs} (pip install it)" if s.needs and find_spec(s.needs) is None else "yes"
        row(s.tool, "crewai-tools", usable, "a web search tool")
    row(config.reader, "crewai-tools", "yes", "the web group's page reader")
    named = sorted(n for n in who if n not in TOOLS and n not in TOOL_GROUPS and n not in LIBRARY_GROUPS and not n.startswith("mcp:"))
    for name in named:
        if any(r["name"] == name for r in rows):
            continue
        try:
            check(ToolSpec(name, {}, "config"), config, env, catalog.roots, "config")
            usable = "yes"
        except ConfigError as exc:
            usable = exc.message.split(": ", 1)[-1]
        row(name, "project" if ":" in name else "crewai-tools", usable)
    for server in config.mcp_servers.values():
        target = server.command if server.command is not None else server.url
        only = f"; only {', '.join(server.tools)}" if server.tools else ""
        row(f"mcp:{server.name}", "mcp", server_problem(server, env) or "yes", f"{server.transport}: {target}{only}")
    return rows


def details(name: str, catalog: Catalog, config: ToolsConfig, env: Mapping[str, str]) -> dict[str, Any]:
    """One tool in full: what the agent reads (its description and arguments), the keys it needs, who has it."""
    found = next((r for r in inventory(catalog, config, env) if r["name"] == name), None)
    doc: dict[str, Any] = dict(found) if found else {"name": name, "used_by": holders(catalog).get(name, [])}
    if name in TOOLS or name in TOOL_GROUPS or name in LIBRARY_GROUPS:
        return doc
    if name.startswith("mcp:"):
        server = config.mcp_servers.get(name[4:])
        if server is None:
            raise ConfigError(f"no MCP server '{name[4:]}' in config/tools.yaml; `mamabear tools list` shows the tools.")
        return doc | {"env": sorted(server.env), "headers": sorted(server.headers), "defined_at": server.where}  # names only: values may be secrets
    tool = resolve(ToolSpec(name, {}, "mamabear tools show"), catalog.roots, "mamabear tools show")
    cls = tool if isinstance(tool, type) else type(tool)
    fields = getattr(cls, "model_fields", {})
    made = not isinstance(tool, type)  # a tool already made (a function under @tool): its own values, not its class's

    def value(key: str) -> Any:
        return getattr(tool, key, None) if made else (fields[key].default if key in fields else None)

    schema = value("args_schema")
    doc["kind"] = doc.get("kind") or ("project" if ":" in name else "crewai-tools")
    doc["description"] = value("description") or ""
    doc["arguments"] = list(getattr(schema, "model_fields", {}) or {})
    doc["settings"] = {k: _shown(k, f.default) for k, f in fields.items() if k not in _BASE_FIELDS and not k.startswith("_")}
    env_field = fields.get("env_vars")
    keys = env_field.default_factory() if env_field is not None and env_field.default_factory is not None else []
    doc["keys"] = [{"name": v.name, "required": v.required, "set": bool(env.get(v.name))} for v in keys]
    doc["defaults"] = {k: _shown(k, v) for k, v in config.defaults.get(name, {}).items()}
    return doc


_SECRET_NAME = ("key", "token", "secret", "password", "auth")


def _shown(name: str, value: Any) -> str:
    """A setting as `tools show` prints it: a value under a name that says it is secret is never shown."""
    if value and any(word in name.lower() for word in _SECRET_NAME):
        return "(hidden)"
    return repr(value)


_BASE_FIELDS = {
    "name",
    "description",
    "args_schema",
    "env_vars",
    "description_updated",
    "cache_function",
    "result_as_answer",
    "max_usage_count",
    "current_usage_count",
    "package_dependencies",
}
