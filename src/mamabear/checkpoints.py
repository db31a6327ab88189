"""A run's checkpoints: CrewAI's own, as JSON files under ``$MAMABEAR_HOME/checkpoints/<run id>/``.

CrewAI writes one after every completed task (its SQLite provider needs SQLite 3.45's
``jsonb()``, so the JSON provider is used). Ours differs from its JsonProvider in three ways:
a file is written to a temporary name and renamed, so a crash or a second Ctrl-C never
leaves a torn checkpoint; secrets are redacted (CrewAI serialises each LLM's api_key);
and the executor ``flow`` entities are left out, since restoring them builds a default
LanceDB memory per agent (3 s) and resuming a crew does not read them.

CrewAI serialises its event record in an event-bus thread while the run goes on adding
events to it, which fails now and then with "dictionary changed size during iteration"
and loses that checkpoint. The record has a read-write lock that its writers take;
``_lock_event_record_reads`` makes serialising take the read side of it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from crewai.state.checkpoint_config import CheckpointConfig
from crewai.state.provider.json_provider import JsonProvider, _build_path
from pydantic import PrivateAttr

from mamabear.redact import Redactor

KEEP = 5  # checkpoints kept per run; older ones are pruned after each write


def _lock_event_record_reads() -> None:
    from crewai.state.event_record import EventRecord

    dump = EventRecord.model_dump
    if getattr(dump, "mamabear_locked", False):
        return

    def locked_dump(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.r_locked():
            return dump(self, *args, **kwargs)

    locked_dump.mamabear_locked = True  # type: ignore[attr-defined]
    EventRecord.model_dump = locked_dump  # type: ignore[method-assign]


_lock_event_record_reads()


class SafeJsonProvider(JsonProvider):
    provider_type: Literal["json"] = "json"
    _redact: Any = PrivateAttr(default=None)

    def checkpoint(self, data: str, location: str, *, parent_id: str | None = None, branch: str = "main") -> str:
        doc = json.loads(data)
        doc["entities"] = [e for e in doc.get("entities", []) if e.get("entity_type") != "flow"]
        text = json.dumps(doc)
        if self._redact is not None:
            text = self._redact(text)
        path = _build_path(location, branch, parent_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".writing-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(path)

    async def acheckpoint(self, data: str, location: str, *, parent_id: str | None = None, branch: str = "main") -> str:
        return self.checkpoint(data, location, parent_id=parent_id, branch=branch)


class Checkpoints:
    def __init__(self, home: Path, run_id: str, redact: Redactor) -> None:
        self.dir = home / "checkpoints" / run_id
        self.redact = redact

    def config(self) -> CheckpointConfig:
        provider = SafeJsonProvider()
        provider._redact = self.redact
        return CheckpointConfig(location=str(self.dir), on_events=["task_completed"], provider=provider, max_checkpoints=KEEP)

    def files(self) -> list[Path]:
        """Complete checkpoint files, oldest first."""
        found = [p for p in self.dir.glob("*/*.json") if not p.name.startswith(".")]
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def latest(self) -> Path | None:
        """The newest checkpoint that parses (an older CrewAI writer may have left a torn one)."""
        for path in reversed(self.files()):
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            return path
        return None

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def restore(self, path: Path) -> Any:
        from crewai import Crew

        return Crew.from_checkpoint(CheckpointConfig(restore_from=str(path)))
