"""A memory record without CrewAI: what the `memory` commands read, write and rank.

Importing CrewAI takes ~3.4 s (its package imports every agent, LLM and tool module), which
made `memory search` a 4.6 s command. ``Record`` has exactly the fields and defaults of
CrewAI's ``MemoryRecord``, and ``composite_score`` is CrewAI's recall ranking with its default
weights (tests/test_memory_record.py checks both against CrewAI), so the CLI finds what an
agent's recall finds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

# CrewAI's MemoryConfig defaults: composite = semantic * 0.5 + recency * 0.3 + importance * 0.2, recency halving in 30 days.
SEMANTIC_WEIGHT, RECENCY_WEIGHT, IMPORTANCE_WEIGHT, RECENCY_HALF_LIFE_DAYS = 0.5, 0.3, 0.2, 30


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as CrewAI's datetime.utcnow() makes


@dataclass
class Record:
    content: str
    id: str = field(default_factory=lambda: str(uuid4()))
    scope: str = "/"
    categories: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    importance: float = 0.5
    created_at: datetime = field(default_factory=_utcnow)
    last_accessed: datetime = field(default_factory=_utcnow)
    embedding: list[float] | None = None
    source: str | None = None
    private: bool = False

    # The two pydantic methods the Chroma store calls, so it reads and writes either kind of record.
    @classmethod
    def model_validate(cls, data: dict[str, Any]) -> Record:
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def model_dump(self, exclude: set[str] | None = None) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in (exclude or set())}


def composite_score(record: Record, semantic: float, now: datetime | None = None) -> float:
    """CrewAI's recall ranking (memory.types.compute_composite_score) with its default weights."""
    age_days = max(((now or _utcnow()) - record.created_at).total_seconds() / 86400.0, 0.0)
    decay = 0.5 ** (age_days / RECENCY_HALF_LIFE_DAYS)
    return SEMANTIC_WEIGHT * semantic + RECENCY_WEIGHT * decay + IMPORTANCE_WEIGHT * record.importance
