"""A CrewAI project in the JSON layout ``crewai create crew`` makes: ``crew.jsonc`` (its tasks, in order, and input
defaults) and ``agents/<name>.jsonc`` at the project's root.

CrewAI's own loader builds the crew from these files when it runs (engine/project.py); here they are read for
the plan only (which agent does which task, the texts whose {placeholders} need inputs, an agent's ``llm``),
and translated into the shape of ``agents.yaml`` and ``tasks.yaml`` entries, lines kept, so the catalog checks
them as it checks YAML. Everything else in them (tools, settings, Python references) is CrewAI's to read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mamabear.config.yamlfile import YamlMapping, load_jsonc
from mamabear.errors import ConfigError

CREW_FILES = ("crew.jsonc", "crew.json")  # CrewAI prefers .jsonc
AGENT_KEYS = ("role", "goal", "backstory", "llm")
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
TASK_KEYS = ("description", "expected_output", "agent", "context", "human_input")


def crew_file(root: Path) -> Path | None:
    """The JSON crew file at ``root``, if ``root`` is such a project."""
    return next((root / name for name in CREW_FILES if (root / name).is_file()), None)


def crew_doc(root: Path) -> YamlMapping:
    path = crew_file(root)
    assert path is not None
    doc = load_jsonc(path)
    if not isinstance(doc, YamlMapping):
        raise ConfigError(f"{path}: a crew file must be a JSON object with 'agents' and 'tasks'.")
    return doc


def agent_entries(root: Path) -> YamlMapping:
    """Each agent the crew names, from ``agents/<name>.jsonc`` (or .json), as an agents.yaml entry."""
    doc = crew_doc(root)
    names = doc.get("agents")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{doc.where('agents')}: 'agents' of {doc.path.name} must be a list of agent names (files in agents/).")
    entries = _like(doc)
    for name in names:
        path = next((root / "agents" / f"{name}{ext}" for ext in (".jsonc", ".json") if (root / "agents" / f"{name}{ext}").is_file()), None)
        if path is None:
            raise ConfigError(f"{doc.where('agents')}: agent '{name}' has no file; write agents/{name}.jsonc.")
        agent = load_jsonc(path)
        if not isinstance(agent, YamlMapping):
            raise ConfigError(f"{path}: an agent file must be a JSON object with role, goal and backstory.")
        entry = _subset(agent, AGENT_KEYS)
        llm = agent.get("llm")
        if isinstance(llm, dict):  # the object form: {"model", "provider", "base_url"} or an Azure deployment
            model, provider = llm.get("model"), llm.get("provider")
            if isinstance(model, str):
                entry["llm"] = f"{provider}/{model}" if isinstance(provider, str) else model
            else:
                del entry["llm"]  # routed by the agent's tier
        tools = agent.get("tools")
        named = [t for t in tools if isinstance(t, str) and _CLASS_NAME.fullmatch(t)] if isinstance(tools, list) else []
        if named:  # crewai-tools classes, checked (a key, a package) and made by mamabear; custom: and Python ones by CrewAI
            entry["tools"], entry.key_lines["tools"] = named, agent.key_lines["tools"]
        entries[name] = entry
        entries.key_lines[name] = doc.key_lines.get("agents", doc.line)
    return entries


def task_entries(root: Path) -> YamlMapping:
    """The crew's tasks, in order, as tasks.yaml entries: each by its ``name`` (``task_N`` without one)."""
    doc = crew_doc(root)
    tasks = doc.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, YamlMapping) for t in tasks):
        raise ConfigError(f"{doc.where('tasks')}: 'tasks' of {doc.path.name} must be a non-empty list of task objects.")
    entries = _like(doc)
    for number, task in enumerate(tasks, start=1):
        name = task.get("name") if isinstance(task.get("name"), str) and task.get("name") else f"task_{number}"
        if name in entries:
            raise ConfigError(f"{task.where('name')}: task name '{name}' is used twice in {doc.path.name}.")
        entries[name] = _subset(task, TASK_KEYS)
        entries.key_lines[name] = task.line
    return entries


def crew_settings(root: Path) -> tuple[str, dict[str, Any], str]:
    """The crew's process, its input defaults and where its process is written."""
    doc = crew_doc(root)
    defaults = doc.get("inputs") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{doc.where('inputs')}: 'inputs' of {doc.path.name} must be an object of input defaults.")
    return str(doc.get("process", "sequential")), dict(defaults), doc.where("process")


def _like(doc: YamlMapping) -> YamlMapping:
    mapping = YamlMapping()
    mapping.path, mapping.line, mapping.key_lines = doc.path, doc.line, {}
    return mapping


def _subset(entry: YamlMapping, keys: tuple[str, ...]) -> YamlMapping:
    mapping = _like(entry)
    mapping.line = entry.line
    for key in keys:
        if key in entry:
            mapping[key] = entry[key]
            mapping.key_lines[key] = entry.key_lines[key]
    return mapping
