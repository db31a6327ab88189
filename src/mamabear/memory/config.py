"""``config/memory.yaml``: the collection, the embedder, and how much an agent recalls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.yamlfile import YamlMapping
from mamabear.errors import ConfigError

LOCAL = "local"


@dataclass
class MemoryConfig:
    collection: str = "mamabear_memory"
    embedder: Any = LOCAL  # "local" or CrewAI's embedder spec {provider, config}
    query_analysis_threshold: int = 200
    save_wait_s: float = 120.0  # how long a recall waits for memories still being saved before it goes on without them
    across_projects: bool = False  # a project's crews recall only their project's memories (/project/NAME) unless true

    @classmethod
    def load(cls, roots: list[Path]) -> MemoryConfig:
        config = cls()
        for doc, path in yamlfile.layers(roots, "memory.yaml"):
            config._merge(doc, path)
        return config

    def _merge(self, doc: Any, path: Path) -> None:
        if doc is None:
            return
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: memory.yaml must be a mapping.")
        known = {"collection", "embedder", "query_analysis_threshold", "save_wait_s", "across_projects"}
        for key in doc:
            if key not in known:
                raise ConfigError(f"{doc.where(key)}: unknown field '{key}' in memory.yaml; use one of: {', '.join(sorted(known))}.")
        if "across_projects" in doc:
            if not isinstance(doc["across_projects"], bool):
                raise ConfigError(f"{doc.where('across_projects')}: 'across_projects' must be true or false.")
            self.across_projects = doc["across_projects"]
        if "collection" in doc:
            self.collection = str(doc["collection"])
        if "embedder" in doc:
            embedder = doc["embedder"]
            if embedder != LOCAL and not (isinstance(embedder, dict) and isinstance(embedder.get("provider"), str)):
                raise ConfigError(f"{doc.where('embedder')}: embedder is 'local' or a mapping with 'provider' and 'config'.")
            self.embedder = embedder if embedder == LOCAL else dict(embedder)
        if "query_analysis_threshold" in doc:
            value = doc["query_analysis_threshold"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{doc.where('query_analysis_threshold')}: 'query_analysis_threshold' must be a whole number of at least 1.")
            self.query_analysis_threshold = value
        if "save_wait_s" in doc:
            wait = doc["save_wait_s"]
            if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < float("inf"):
                raise ConfigError(f"{doc.where('save_wait_s')}: 'save_wait_s' must be a number of seconds, zero or more.")
            self.save_wait_s = float(wait)

    @property
    def embedder_name(self) -> str:
        """What the store remembers as the embedder that filled it."""
        if self.embedder == LOCAL:
            return "local:all-MiniLM-L6-v2"
        config = self.embedder.get("config") or {}
        model = config.get("model_name") or config.get("model") or "default"
        return f"{self.embedder['provider']}:{model}"
