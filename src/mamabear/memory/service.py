"""What the ``memory`` commands do: add, search, list, stats and reset on the shared memory."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from mamabear.errors import UsageError
from mamabear.memory import shared
from mamabear.workspace import Workspace


def _scope(path: str | None) -> str | None:
    if path is None:
        return None
    if not path.startswith("/"):
        raise UsageError(f"--scope {path}: a scope is a path starting with /, such as /user or /crew/research.")
    return path.rstrip("/") or "/"


class MemoryService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.config = ws.memory_config

    @cached_property
    def storage(self) -> Any:
        return shared.open_storage(self.ws.settings, self.config)

    @cached_property
    def memory(self) -> Any:
        return shared.make_memory(self.ws.settings, self.config, storage=self.storage)

    def add(self, text: str, scope: str, categories: list[str], importance: float) -> Any:
        if not text.strip():
            raise UsageError("memory add needs some text to remember.")
        # Scope, categories and importance given: CrewAI's Memory calls no model to infer them.
        record = self.memory.remember(text, scope=_scope(scope), categories=categories, importance=importance)
        self.memory.drain_writes()
        return record

    def search(self, query: str, scope: str | None, limit: int) -> list[Any]:
        return self.memory.recall(query, scope=_scope(scope), limit=limit, depth="shallow")

    def list(self, scope: str | None, limit: int) -> list[Any]:
        return self.storage.list_records(scope_prefix=_scope(scope), limit=limit)

    def stats(self) -> dict[str, Any]:
        scopes = {}
        for top in self.storage.list_scopes("/"):
            scopes[top] = self.storage.count(top)
            for child in self.storage.list_scopes(top):
                scopes[child] = self.storage.count(child)
        return {"records": self.storage.count(), "location": shared.location(self.ws.settings), "collection": self.config.collection,
                "embedder": self.config.embedder_name, "scopes": scopes, "categories": self.storage.list_categories()}

    def reset(self, scope: str | None) -> int:
        scope = _scope(scope)
        count = self.storage.count(scope)
        self.storage.reset(scope)
        return count
