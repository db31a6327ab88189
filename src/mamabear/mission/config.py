"""``config/missions.yaml``: who plans and who judges, and the limits that keep a mission from running away."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError


@dataclass(frozen=True)
class StuckLimits:
    same_failure: int = 2  # an item failing the same way this many times in a row
    same_tool_call: int = 3  # the same tool call with the same arguments, this many times in one step
    steps_without_progress: int = 10  # model-driven steps with no item completed


@dataclass(frozen=True)
class MissionConfig:
    planner: str = "scout_commander"  # makes and remakes the plan, and decides the mission is done
    judge: str = "model_coordinator"  # gives pass or fail, with a reason, on the criteria no command can check
    max_steps: int = 200  # model-driven steps in all (--max-steps)
    item_retries: int = 2  # a failed item is tried again this many times, with the failure fed back
    replans: int = 3  # then the planner remakes the remaining plan, at most this many times
    parallel_items: int = 4  # on a worker pool: independent items run at once, on several workers (1: one at a time)
    stuck: StuckLimits = field(default_factory=StuckLimits)
    origin: dict[str, str] = field(default_factory=dict, compare=False)  # planner/judge -> the file:line that set it

    @classmethod
    def load(cls, roots: list[Path]) -> MissionConfig:
        config = cls()
        for doc, path in yamlfile.layers(roots, "missions.yaml"):
            config = config._merged(doc, path)
        return config

    def _merged(self, doc: Any, path: Path) -> MissionConfig:
        if doc is None:
            return self
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: missions.yaml must be a mapping.")
        known_keys(doc, {f.name for f in fields(self)}, "missions.yaml")
        values: dict[str, Any] = {}
        for key in ("planner", "judge"):
            if key in doc:
                if not isinstance(doc[key], str) or not doc[key]:
                    raise ConfigError(f"{doc.where(key)}: '{key}' must be an agent id, such as scout_commander.")
                values[key] = doc[key]
                values["origin"] = {**values.get("origin", self.origin), key: doc.where(key)}
        for key in ("max_steps", "item_retries", "replans", "parallel_items"):
            if key in doc:
                values[key] = _count(doc, key, least=1 if key == "parallel_items" else 0)
        if "stuck" in doc:
            stuck = doc["stuck"]
            if not isinstance(stuck, YamlMapping):
                raise ConfigError(f"{doc.where('stuck')}: 'stuck' must be a mapping of limits.")
            known_keys(stuck, {f.name for f in fields(StuckLimits)}, "stuck")
            values["stuck"] = replace(self.stuck, **{key: _count(stuck, key, least=1) for key in stuck})
        return replace(self, **values)

    def check_agents(self, agents: set[str]) -> list[str]:
        """The planner and the judge must be agents of the catalog (each error at the file:line that named it)."""
        return [
            f"{self.origin.get(role, 'missions.yaml')}: {role} '{agent}' is not an agent (agents: {', '.join(sorted(agents))})."
            for role, agent in (("planner", self.planner), ("judge", self.judge))
            if agent not in agents
        ]


def _count(entry: YamlMapping, key: str, least: int = 0) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{entry.where(key)}: '{key}' must be a whole number of at least {least}.")
    return value
