"""What the ``memory`` commands do: add, search, list, stats and reset on the shared memory.

They never import CrewAI (3.4 s): records are ``memory.record.Record``s, ranked as CrewAI's recall
ranks them, embedded by the same local model, in the same Chroma store the crews use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mamabear.config.settings import Settings
from mamabear.errors import ConfigError, UsageError
from mamabear.memory import shared
from mamabear.memory.config import MemoryConfig
from mamabear.memory.record import Record, composite_score


@dataclass(frozen=True)
class Match:
    record: Record
    score: float


def _scope(path: str | None) -> str | None:
    if path is None:
        return None
    if not path.startswith("/"):
        raise UsageError(f"--scope {path}: a scope is a path starting with /, such as /user or /crew/research.")
    return path.rstrip("/") or "/"


class MemoryService:
    def __init__(self, settings: Settings, config: MemoryConfig) -> None:
        self.settings = settings
        self.config = config

    @cached_property
    def storage(self) -> Any:
        return shared.open_storage(self.settings, self.config, record_type=Record)

    @cached_property
    def embedder(self) -> Any:
        from mamabear.memory.chroma_store import EmbedderMismatchError
        from mamabear.memory.embedder import make_embedder

        try:
            self.storage.check_embedder()  # before anything is embedded: vectors of two embedders do not compare
        except EmbedderMismatchError as exc:
            raise ConfigError(str(exc)) from exc
        return make_embedder(self.config)

    def add(self, text: str, scope: str, categories: list[str], importance: float) -> Record:
        from mamabear.config.redact import Redactor

        content = Redactor.for_settings(self.settings)(text) or ""  # secrets and sensitive data never reach the memory
        if not content.strip():
            raise UsageError("memory add needs some text to remember.")
        record = Record(content=content, scope=_scope(scope) or "/", categories=list(categories), importance=importance)
        record.embedding = self.embedder([content])[0]
        self.storage.save([record])
        return record

    def search(self, query: str, scope: str | None, limit: int) -> list[Match]:
        """As an agent's recall (CrewAI's shallow depth): nearest by meaning, private records left out, ranked by its composite score."""
        if not query.strip():
            return []
        found = self.storage.search(self.embedder([query])[0], scope_prefix=_scope(scope), limit=limit, min_score=0.0)
        matches = sorted((Match(r, composite_score(r, s)) for r, s in found if not r.private), key=lambda m: m.score, reverse=True)
        if matches:
            try:
                self.storage.touch_records([m.record.id for m in matches])
            except Exception:  # noqa: BLE001 - as in CrewAI's recall: last-access times are not worth failing a search for
                pass
        return matches

    def records(self, scope: str | None, limit: int) -> list[Any]:
        return self.storage.list_records(scope_prefix=_scope(scope), limit=limit)

    def stats(self) -> dict[str, Any]:
        scopes = {}
        for top in self.storage.list_scopes("/"):
            scopes[top] = self.storage.count(top)
            for child in self.storage.list_scopes(top):
                scopes[child] = self.storage.count(child)
        return {
            "records": self.storage.count(),
            "location": shared.location(self.settings),
            "collection": self.config.collection,
            "embedder": self.config.embedder_name,
            "scopes": scopes,
            "categories": self.storage.list_categories(),
        }

    def reset(self, scope: str | None) -> int:
        scope = _scope(scope)
        count = self.storage.count(scope)
        self.storage.reset(scope)
        return count
