"""``config/memory.yaml``: the collection, the embedder, and how much an agent recalls."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mamabear.config import layered

LOCAL = "local"


class MemoryConfig(layered.Section):
    collection: str = "mamabear_memory"
    embedder: str | dict[str, Any] = Field(LOCAL, description="'local' or a mapping with 'provider' and 'config'")  # CrewAI's embedder spec
    query_analysis_threshold: int = Field(200, ge=1, description="a whole number of at least 1")
    # how long a recall waits for memories still being saved before it goes on without them
    save_wait_s: float = Field(120.0, ge=0, allow_inf_nan=False, description="a number of seconds, zero or more")
    # a project's crews recall only their project's memories (/project/NAME) unless true
    across_projects: bool = Field(False, description="true or false")
    # none: the memory makes no model call (a task's result is kept as it is, in chunks; recall is by the embedding);
    # model: CrewAI's own way (the model distils each result, analyses long queries, merges similar memories)
    analysis: Literal["none", "model"] = Field("none", description="'none' or 'model'")
    # what a task is shown of what was recalled: at most this many memories, this many characters in all
    recall_limit: int = Field(5, ge=1, description="a whole number of at least 1")
    recall_chars: int = Field(1000, ge=50, description="a whole number of at least 50")
    # a CrewAI project's crew gets the shared memory when it asks for memory (memory=True); `always`: every project's
    projects: Literal["as_asked", "always"] = Field("as_asked", description="'as_asked' or 'always'")

    @classmethod
    def load(cls, roots: list[Path]) -> MemoryConfig:
        return layered.read(roots, "memory.yaml", cls, atomic=("embedder",))

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, embedder: str | dict[str, Any]) -> str | dict[str, Any]:
        if embedder != LOCAL and not (isinstance(embedder, dict) and isinstance(embedder.get("provider"), str)):
            raise ValueError("embedder is 'local' or a mapping with 'provider' and 'config'.")
        return embedder if isinstance(embedder, str) else dict(embedder)

    @property
    def embedder_name(self) -> str:
        """What the store remembers as the embedder that filled it."""
        if not isinstance(self.embedder, dict):
            return "local:all-MiniLM-L6-v2"
        config = self.embedder.get("config") or {}
        model = config.get("model_name") or config.get("model") or "default"
        return f"{self.embedder['provider']}:{model}"
