"""Tools from outside the sandbox, by name: crewai-tools classes, a project's own tools, the ``web`` group.

``plan_tools`` runs before any model call (at ``validate``, ``--dry-run`` and a run's start): it spells out
the ``web`` group by which keys are set, and refuses with one sentence at the file:line that named it a tool
that does not exist, takes arguments it does not have, needs a package that is not installed or an API key
that is not set. ``make_tool`` makes a checked tool for one agent, wrapped in the limits of
``config/tools.yaml``: a call that runs too long is abandoned and the agent told, and long output is cut.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from mamabear.config.catalog import ToolSpec
from mamabear.config.toolset import ToolsConfig
from mamabear.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def plan_tools(specs: tuple[ToolSpec, ...], config: ToolsConfig, env: Mapping[str, str], roots: list[Path], owner: str) -> tuple[ToolSpec, ...]:
    """The tools ``specs`` names, the web group spelled out, duplicates (by name) dropped, the first kept.

    A tool named in YAML is checked now (made once: its class, arguments, packages and keys). The web group's tools are
    chosen by which key is set and checked when they are made for the run, so that a plan (``--dry-run``) of a crew
    that only has ``web`` does not import crewai-tools."""
    planned: dict[str, ToolSpec] = {}
    for spec in specs:
        if spec.name == "web":
            for name in config.web_group(env):
                planned.setdefault(name, ToolSpec(name, {}, spec.where))
        elif spec.name.startswith("mcp:"):
            server = config.mcp_servers.get(spec.name[4:])
            if server is None:
                declared = ", ".join(config.mcp_servers) or "none"
                raise ConfigError(
                    f"{spec.where}: {owner} names MCP server '{spec.name[4:]}', which config/tools.yaml does not declare (mcp_servers: {declared})."
                )
            why = server_problem(server, env)
            if why:
                raise ConfigError(f"{server.where}: MCP server '{server.name}': {why}.")
            planned.setdefault(spec.name, spec)
        elif spec.name not in planned:
            check(spec, config, env, roots, owner)
            planned[spec.name] = spec
    return tuple(planned.values())


def server_problem(server: Any, env: Mapping[str, str]) -> str | None:
    """Why an MCP server cannot be started now: its command is not installed, or a ${VAR} it takes is not set."""
    if server.command is not None and shutil.which(server.command, path=env.get("PATH", os.environ.get("PATH"))) is None:
        return f"its command '{server.command}' is not found; install it, or fix the command"
    unset = sorted({name for value in [*server.env.values(), *server.headers.values()] for name in _VAR.findall(value) if not env.get(name)})
    if unset:
        return f"it takes ${{{unset[0]}}}, which is not set; set it, or write the value"
    return None


def crew_problems(catalog: Any, env: Mapping[str, str]) -> list[str]:
    """For ``validate``: one sentence per tool of a crew's agents and tasks that cannot be used now."""
    config = ToolsConfig.load(catalog.roots)
    found: list[str] = []
    for name in catalog.crew_files():
        try:
            crew = catalog.crew(name)
        except ConfigError:
            continue  # said already, by the catalog's own check
        scope = catalog.scoped(crew)
        owners = [(f"agent '{a}'", scope.agents[a].library + crew.library) for a in crew.agents]
        owners += [(f"task '{t.task}'", scope.tasks[t.task].library) for t in crew.tasks]
        for owner, specs in owners:
            try:
                plan_tools(specs, config, env, catalog.roots, owner)
            except ConfigError as exc:
                if exc.message not in found:
                    found.append(exc.message)
    return found


def check(spec: ToolSpec, config: ToolsConfig, env: Mapping[str, str], roots: list[Path], owner: str) -> None:
    """A ConfigError at ``spec.where`` unless the tool can be made with its arguments and used now."""
    found = resolve(spec, roots, owner)
    if not isinstance(found, type):
        if spec.args:
            raise ConfigError(f"{spec.where}: tool '{spec.name}' of {owner} is a tool already made; it takes no args.")
        return
    for var in _env_vars(found):
        if var.required and not env.get(var.name) and not var.default:
            raise ConfigError(f"{spec.where}: tool {spec.name} of {owner} needs {var.name} ({var.description}); set it, or remove the tool.")
    _instance(found, spec, config, owner)


def make_tool(spec: ToolSpec, config: ToolsConfig, roots: list[Path], env: Mapping[str, str], guard: Any = None) -> Any:
    """The tool, made for one agent (a class gets the defaults of tools.yaml, then its own args), within the limits.
    A key it reads from the environment that is set only in ``.env`` is put in this process's environment."""
    found = resolve(spec, roots, "an agent")
    if isinstance(found, type):
        for var in _env_vars(found):
            if env.get(var.name):
                os.environ.setdefault(var.name, env[var.name])
    tool = _instance(found, spec, config, "an agent") if isinstance(found, type) else found
    from mamabear.tools.limited import limited

    return limited(tool, config, guard)


def resolve(spec: ToolSpec, roots: list[Path], owner: str) -> Any:
    """A crewai-tools class by its name, or a project's tool by import path: a BaseTool class or instance, or a function."""
    from crewai.tools import BaseTool

    if ":" in spec.name:
        from mamabear.config.refs import Ref, project_path
        from mamabear.config.refs import resolve as import_ref

        with project_path(roots):
            found = import_ref(Ref("tool", spec.name, spec.where), owner)
        if isinstance(found, type) and issubclass(found, BaseTool) or isinstance(found, BaseTool):
            return found
        from crewai.tools import tool as as_tool

        try:
            return as_tool(found)  # a plain function: CrewAI's own @tool makes it one
        except Exception as exc:  # noqa: BLE001 - CrewAI says why it cannot (no docstring, ...)
            raise ConfigError(f"{spec.where}: tool '{spec.name}' of {owner} cannot be a tool: {exc}.") from exc
    import crewai_tools

    found = getattr(crewai_tools, spec.name, None)
    if not (isinstance(found, type) and issubclass(found, BaseTool)):
        names = [n for n in dir(crewai_tools) if n.endswith("Tool")]
        close = get_close_matches(spec.name, names, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"{spec.where}: {owner} names tool '{spec.name}', which crewai-tools does not have{hint}; `mamabear tools list` shows the tools.")
    return found


def unset_keys(tool: Any, env: Mapping[str, str]) -> list[str]:
    """The variables a tool made in a project's Python needs that are not set: "NAME (what it is)"."""
    return [f"{v.name} ({v.description})" for v in _env_vars(type(tool)) if v.required and not env.get(v.name) and not v.default]


def _env_vars(cls: type) -> list[Any]:
    field = getattr(cls, "model_fields", {}).get("env_vars")
    if field is None or field.default_factory is None:
        return []
    return list(field.default_factory())


def _instance(cls: type, spec: ToolSpec, config: ToolsConfig, owner: str) -> Any:
    from pydantic import ValidationError

    from mamabear.compat.crewai_tools import MissingPackage, no_install_prompts

    args = {**config.defaults.get(spec.name, {}), **spec.args}
    try:
        with no_install_prompts():
            return cls(**args)
    except MissingPackage as exc:
        packages = " ".join(exc.packages)
        raise ConfigError(f"{spec.where}: tool {spec.name} of {owner} needs {packages}, which is not installed; pip install {packages}.") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{spec.where}: tool {spec.name} of {owner} does not take these args ({where}: {first['msg']}).") from exc
    except Exception as exc:  # noqa: BLE001 - whatever the tool's own constructor raises is said in one sentence
        raise ConfigError(f"{spec.where}: tool {spec.name} of {owner} cannot be made with these args: {exc}.") from exc
