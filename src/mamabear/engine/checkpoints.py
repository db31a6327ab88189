"""A run's checkpoints: CrewAI's own, as JSON files under ``$MAMABEAR_HOME/checkpoints/<run id>/``.

CrewAI writes one after every completed task (its SQLite provider needs SQLite 3.45's
``jsonb()``, so the JSON provider is used). Ours differs from its JsonProvider in three ways:
a file is written to a temporary name and renamed, so a crash or a second Ctrl-C never
leaves a torn checkpoint; secrets are redacted (CrewAI serialises each LLM's api_key);
and ``flow`` entities (each agent's executor, the memory's encoding and recall flows)
are never registered with the checkpointed state: resuming a crew does not read them,
restoring them built a default LanceDB memory per agent (3 s), and a memory flow's state
holds classes that cannot be serialised, which failed the whole checkpoint.

CrewAI also serialises its whole event record into every checkpoint: each event carries
whole agents (with their tools), tasks and prompts, so the record was most of a
checkpoint's size and time, and it is serialised in an event-bus thread while the run
adds events, which failed now and then with "dictionary changed size during iteration"
and lost that checkpoint. ``compat.crewai.apply_checkpoint_patches`` (applied by the run engine) writes each event's skeleton
instead (type, ids, task, agent, order: what CrewAI's restore reads; restored, they load
as plain BaseEvents), copied under the record's own read lock. The run store keeps the
full record of every call and event.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from crewai.state.checkpoint_config import CheckpointConfig
from crewai.state.provider.json_provider import JsonProvider
from pydantic import PrivateAttr

from mamabear.compat.crewai import checkpoint_path
from mamabear.config.redact import Redactor

KEEP = 5  # checkpoints kept per run; older ones are pruned after each write


class CheckpointEvents(Protocol):
    """Where a checkpoint that cannot be written is said (the run's tracker implements it)."""

    def note(self, kind: str, message: str, data: dict | None = None) -> None: ...


class SafeJsonProvider(JsonProvider):
    provider_type: Literal["json"] = "json"
    _redact: Any = PrivateAttr(default=None)
    _events: Any = PrivateAttr(default=None)  # told why a checkpoint could not be written (CrewAI only logs it)
    _mirror: Any = PrivateAttr(default=None)  # also given each checkpoint written: (its path, its text), for the run store

    def checkpoint(self, data: str, location: str, *, parent_id: str | None = None, branch: str = "main") -> str:
        text = without_code(data)
        if self._redact is not None:
            text = self._redact(text)
        path = checkpoint_path(location, branch, parent_id)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".writing-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            if self._mirror is not None:
                self._mirror(path, text)
        except BaseException as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError) and self._events is not None:
                self._events.note(
                    "checkpoint_failed",
                    f"warning: the checkpoint could not be written to {path.parent} ({exc.strerror or exc}); "
                    "a resume would repeat the tasks since the last one written",
                )
            raise
        return str(path)

    async def acheckpoint(self, data: str, location: str, *, parent_id: str | None = None, branch: str = "main") -> str:
        return self.checkpoint(data, location, parent_id=parent_id, branch=branch)


# What a checkpoint must not hold: Python code named by the YAML (CrewAI refuses to restore a callback path, and
# drops a guardrail function), and MCP servers (their env and headers hold keys). A resumed run gives them back
# from the plan (engine.build.AgentParts.reattach).
AGENT_CODE = ("callbacks", "step_callback", "mcps", "function_calling_llm")
TASK_CODE = ("callback", "guardrail", "guardrails", "converter_cls")


def without_code(text: str) -> str:
    """The checkpoint's JSON with every agent's and task's code-bearing fields emptied (unchanged if it is not JSON)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text

    def clean(node: Any) -> None:
        if isinstance(node, dict):
            if "role" in node and "goal" in node and "backstory" in node:
                node.update({k: None for k in AGENT_CODE if node.get(k)})
            if "description" in node and "expected_output" in node:
                node.update({k: None for k in TASK_CODE if node.get(k)})
            for value in node.values():
                clean(value)
        elif isinstance(node, list):
            for value in node:
                clean(value)

    clean(doc)
    return json.dumps(doc)


class Checkpoints:
    """A run's checkpoints: files on this machine, and a copy of each in the run store (``store``), so a run
    continued on another machine (a worker pool sharing a PostgreSQL store) restores its own."""

    def __init__(self, home: Path, run_id: str, redact: Redactor, events: CheckpointEvents | None = None, store: Any = None) -> None:
        self.dir = home / "checkpoints" / run_id
        self.run_id = run_id
        self.redact = redact
        self.events = events
        self.store = store

    def config(self) -> CheckpointConfig:
        provider = SafeJsonProvider()
        provider._redact = self.redact.referenced  # a secret as ${NAME}: a restore puts the value back from the environment
        provider._events = self.events
        provider._mirror = self._mirror if self.store is not None else None
        return CheckpointConfig(location=str(self.dir), on_events=["task_completed"], provider=provider, max_checkpoints=KEEP)

    def _mirror(self, path: Path, text: str) -> None:
        try:
            self.store.save_checkpoint(self.run_id, str(path.relative_to(self.dir)), text, KEEP)
        except Exception as exc:  # noqa: BLE001 - the file is written: a store that failed now costs only another machine's resume
            if self.events is not None:
                self.events.note(
                    "checkpoint_failed", f"warning: the checkpoint could not be copied to the run store ({exc}); it is a file on this machine only"
                )

    def files(self) -> list[Path]:
        """Complete checkpoint files, oldest first."""
        found = [p for p in self.dir.glob("*/*.json") if not p.name.startswith(".")]
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def latest(self) -> Path | None:
        """The newest checkpoint that parses into a crew's state (a torn, empty, ``{}`` or ``null`` one is passed over).
        The run store's newest comes first when this machine does not have it (another machine's attempt went
        further); it is written here first."""
        stored = self._stored()
        if stored and not (self.dir / stored[0][0]).is_file() and (path := self._written(*stored[0])) is not None:
            return path
        for path in reversed(self.files()):
            try:
                if _usable(path.read_text(encoding="utf-8")):
                    return path
            except (OSError, ValueError):  # pruned meanwhile, or not text
                continue
        return next((path for name, body in stored if (path := self._written(name, body)) is not None), None)

    def _stored(self) -> list[tuple[str, str]]:
        if self.store is None:
            return []
        try:
            return self.store.checkpoint_bodies(self.run_id)
        except Exception:  # noqa: BLE001 - a store that cannot be read now: the files, then the stored outputs
            return []

    def _written(self, name: str, body: str) -> Path | None:
        """A stored checkpoint as a file here (the restore reads files); None when it is unusable or cannot be written."""
        path = self.dir / name
        if not _usable(body) or not path.resolve().is_relative_to(self.dir.resolve()):
            return None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
        except OSError:
            return None
        return path

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.store is not None:
            try:
                self.store.drop_checkpoints(self.run_id)
            except Exception:  # noqa: BLE001 - the run is recorded completed; stale copies cost only space
                if self.events is not None:
                    self.events.note("checkpoint_failed", f"warning: the completed run's checkpoints could not be dropped from the run store ({self.run_id})")

    def restore(self, path: Path, env: Mapping[str, str] | None = None) -> Any:
        """The crew of checkpoint ``path``, with the secrets it holds as ``${NAME}`` put back from ``env`` (a variable
        that is not set now is a usage error, in one sentence)."""
        from crewai import Crew

        from mamabear.config.redact import dereferenced

        text = path.read_text(encoding="utf-8")
        whole = dereferenced(text, env or {}, f"checkpoint {path.name} of run {self.run_id}", in_json=True)
        if whole == text:
            return Crew.from_checkpoint(CheckpointConfig(restore_from=str(path)))
        fd, tmp = tempfile.mkstemp(prefix="mamabear-restoring-", suffix=".json")  # 0600, outside the home, gone at once
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(whole)
            return Crew.from_checkpoint(CheckpointConfig(restore_from=tmp))
        finally:
            os.unlink(tmp)  # the values were in it only for CrewAI to read


def _usable(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("entities"), list) and bool(data["entities"])
