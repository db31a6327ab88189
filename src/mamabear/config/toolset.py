"""``config/tools.yaml``: the ``web`` group's search tools and reader, default arguments per tool class, and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError


@dataclass
class ToolsConfig:
    search: tuple[tuple[str, str], ...] = (  # (tool class, the key that makes it the one)
        ("SerperDevTool", "SERPER_API_KEY"),
        ("TavilySearchTool", "TAVILY_API_KEY"),
        ("BraveSearchTool", "BRAVE_API_KEY"),
        ("EXASearchTool", "EXA_API_KEY"),
    )
    reader: str = "ScrapeWebsiteTool"
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool class -> its arguments
    timeout_s: float = 60.0
    output_chars: int = 20000

    @classmethod
    def load(cls, roots: list[Path]) -> ToolsConfig:
        config = cls()
        for doc, path in yamlfile.layers(roots, "tools.yaml"):
            config._merge(doc, path)
        return config

    def web(self, env: Mapping[str, str]) -> tuple[str, ...]:
        """The web group's tools: the first search tool whose key is set, then the reader."""
        found = [tool for tool, key in self.search if env.get(key)]
        return (*found[:1], self.reader)

    def search_keys(self) -> str:
        return ", ".join(key for _, key in self.search)

    def _merge(self, doc: Any, path: Path) -> None:
        if doc is None:
            return
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: tools.yaml must be a mapping.")
        known_keys(doc, {"web", "defaults", "limits"}, "tools.yaml")
        web = doc.get("web")
        if web is not None:
            if not isinstance(web, YamlMapping):
                raise ConfigError(f"{doc.where('web')}: 'web' must be a mapping with 'search' and 'reader'.")
            known_keys(web, {"search", "reader"}, "web")
            if "search" in web:
                search = web["search"]
                if not isinstance(search, list) or not all(isinstance(s, YamlMapping) and set(s) == {"tool", "key"} for s in search):
                    raise ConfigError(f"{web.where('search')}: 'search' is a list of {{tool: CLASS, key: ENV_VAR}}, first choice first.")
                self.search = tuple((str(s["tool"]), str(s["key"])) for s in search)
            if "reader" in web:
                if not isinstance(web["reader"], str) or not web["reader"]:
                    raise ConfigError(f"{web.where('reader')}: 'reader' must be a tool class name, such as ScrapeWebsiteTool.")
                self.reader = web["reader"]
        defaults = doc.get("defaults")
        if defaults is not None:
            if not isinstance(defaults, YamlMapping) or not all(isinstance(v, YamlMapping) for v in defaults.values()):
                raise ConfigError(f"{doc.where('defaults')}: 'defaults' maps a tool class to a mapping of its arguments.")
            for name, args in defaults.items():
                self.defaults[name] = {**self.defaults.get(name, {}), **args}
        limits = doc.get("limits")
        if limits is not None:
            if not isinstance(limits, YamlMapping):
                raise ConfigError(f"{doc.where('limits')}: 'limits' must be a mapping.")
            known_keys(limits, {"timeout_s", "output_chars"}, "limits")
            for key in ("timeout_s", "output_chars"):
                if key in limits:
                    value = limits[key]
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                        raise ConfigError(f"{limits.where(key)}: '{key}' must be a positive number.")
                    setattr(self, key, int(value) if key == "output_chars" else float(value))
