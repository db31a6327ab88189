"""The shared memory as CrewAI sees it: its unified ``Memory`` on our Chroma store and embedder.

Scopes: ``/user`` (preferences and profile, what ``memory add`` writes by default),
``/crew/NAME`` (what a crew's agents learn; CrewAI files each agent's under
``/crew/NAME/agent/ROLE``) and ``/run/ID``. Every record a run saves carries its run id.
Agents recall across all scopes unless their crew is ``isolated``; a ``read_only`` crew
recalls and never saves. What a run saves and recalls is written to its events.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from mamabear.config.redact import Redactor
from mamabear.config.settings import Settings
from mamabear.errors import ConfigError
from mamabear.memory.config import MemoryConfig
from mamabear.memory.embedder import make_embedder


class MemoryEvents(Protocol):
    """What a run's memory tells the run: saves, recalls and what was not waited for (the run's tracker implements it)."""

    def note(self, kind: str, message: str, data: dict | None = None) -> None: ...


def location(settings: Settings) -> str:
    return settings.env.get("MAMABEAR_CHROMA_URL") or str(settings.home / "chroma")


def open_storage(settings: Settings, config: MemoryConfig, record_type: Any = None) -> Any:
    from mamabear.memory.chroma_store import ChromaStorage

    return ChromaStorage.open(location(settings), collection=config.collection, embedder=config.embedder_name, record_type=record_type)


class _Recorded:
    """The store as one run's memory sees it: every save is noted for the run's record, with its run id."""

    def __init__(self, storage: Any, run_id: str, events: MemoryEvents) -> None:
        self._storage, self._run_id, self._events = storage, run_id, events

    def save(self, records: list[Any]) -> None:
        for record in records:
            record.metadata = {**(record.metadata or {}), "run_id": self._run_id}
        self._storage.save(records)
        for record in records:
            self._events.note(
                "memory_saved", f"saved to memory {record.scope}: {record.content[:120]}", {"id": record.id, "scope": record.scope, "content": record.content}
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


CHUNK_CHARS = 1000  # of a task's result, each kept as one memory (all-MiniLM-L6-v2 reads about 1,000 characters)


def result_chunks(content: str, size: int = CHUNK_CHARS) -> list[str]:
    """What a task produced (the ``Result:`` part of CrewAI's save text), in chunks of about ``size`` characters cut
    at paragraph, then line, then word boundaries."""
    text = content.split("\nResult: ", 1)[1] if "\nResult: " in content else content
    text = text.strip()
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, size):
        if current and len(current) + len(piece) + 2 > size:
            chunks.append(current)
            current = ""
        current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, size: int) -> list[str]:
    """The text's paragraphs, each cut further (lines, then words) when longer than ``size``."""
    pieces: list[str] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        if not paragraph:
            continue
        if len(paragraph) <= size:
            pieces.append(paragraph)
            continue
        words, line = paragraph.split(), ""
        for word in words:
            if line and len(line) + len(word) + 1 > size:
                pieces.append(line)
                line = ""
            line = f"{line} {word}" if line else word[:size]
        if line:
            pieces.append(line)
    return pieces


def no_model() -> Any:
    """The memory's model when none is wanted (the ``memory`` commands): any call fails at once, here.

    CrewAI's Memory falls back to safe defaults when its model fails (insert the record as
    given, keep the query as typed), and without this it would build its own default model,
    which calls OpenAI whenever a key happens to be set.
    """
    from crewai.llms.base_llm import BaseLLM

    class NoModel(BaseLLM):
        def call(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the memory commands call no model")

    return NoModel(model="none", provider="none")


def make_memory(
    settings: Settings,
    config: MemoryConfig,
    storage: Any = None,
    llm: Any = None,
    crew: str | None = None,
    mode: str = "shared",
    run_id: str | None = None,
    events: MemoryEvents | None = None,
    warm: bool = False,
    project: str | None = None,
    tape: Any = None,
) -> Any:
    """CrewAI's Memory for the CLI (no crew) or for a run of a crew in a memory mode.

    ``project``: the crew is a project's own; everything it saves is under ``/project/NAME/`` and it recalls only
    its project's memories; with memory.yaml's ``across_projects`` it saves and recalls as a packaged crew does.

    ``warm``: load the embedding model now (a run, whose first task recalls), not at the first text to embed.

    ``tape``: the run's recording (llm.tape.Tape): each recall is written to it, and on replay answered from it (what
    was recalled then, whatever the store holds now), so a memory-on run replays the requests it recorded; a replay
    saves nothing. With memory.yaml's ``analysis: none`` (the default) the memory makes no model call at all.
    """
    from crewai.memory.unified_memory import Memory
    from pydantic import model_serializer

    from mamabear.memory.chroma_store import EmbedderMismatchError

    storage = storage if storage is not None else open_storage(settings, config)
    try:
        storage.check_embedder()
    except EmbedderMismatchError as exc:
        raise ConfigError(str(exc)) from exc
    home = f"/project/{project}" if project and not config.across_projects else ""
    crew_scope = f"{home}/crew/{crew}" if crew else None
    recall_root = crew_scope if mode == "isolated" else (home or None)
    redact = Redactor.for_settings(settings)  # secrets and sensitive data never reach the memory
    thinking = config.analysis == "model"  # the model distils, analyses and merges (CrewAI's way); else no model call
    replaying = tape is not None and tape.replaying

    class SharedMemory(Memory):
        save_wait_s: ClassVar[float] = config.save_wait_s  # the longest anything waits for memories still being saved

        @model_serializer(mode="plain")
        def _not_checkpointed(self) -> bool:
            # A checkpoint records "no memory"; a resumed run attaches the shared memory again
            # (restoring CrewAI's form of it would open a LanceDB store).
            return False

        def remember(self, content: str, *args: Any, **kwargs: Any) -> Any:
            if replaying:  # a replay changes no memory (its agents keep their memory tools, as recorded)
                return None
            return super().remember(redact(content) or "", *args, **kwargs)

        def remember_many(self, contents: list[str], *args: Any, **kwargs: Any) -> Any:
            if replaying:
                return []
            contents = [redact(c) or "" for c in contents]
            kwargs["root_scope"] = kwargs.get("root_scope") or crew_scope
            if not thinking and not args:  # filed where the configuration says, not where a model's answer does
                kwargs = {"scope": "/", "categories": ["task_result"], "importance": self.default_importance, **kwargs}
            return super().remember_many(contents, *args, **kwargs)

        def extract_memories(self, content: str) -> list[str]:
            """A task's result to keep: with ``analysis: none`` the result itself, in chunks (no model call)."""
            return super().extract_memories(content) if thinking else result_chunks(content)

        def drain_writes(self) -> None:
            """Wait for the memories still being saved, but not for ever: a save stuck in its model call or its store
            (a full disk) would hold the recall before every task, and so the run. After ``save_wait_s`` it goes on."""
            from concurrent.futures import wait

            from mamabear.compat.crewai import pending_saves

            _, running = wait(pending_saves(self), timeout=config.save_wait_s)
            if running and events is not None:
                events.note("memory_failed", f"warning: {len(running)} memory save(s) still running after {config.save_wait_s:g}s; going on without them", {})

        def recall(self, query: str, *args: Any, **kwargs: Any) -> Any:
            from crewai.memory.types import MemoryMatch

            if not thinking:
                kwargs["depth"] = "shallow"  # by the embedding alone: CrewAI's deep recall asks a model first
            if replaying:
                matches = [MemoryMatch.model_validate(m) for m in tape.recalled(redact(query) or "")]
            else:
                matches = shown(super().recall(query, *args, **{**kwargs, "limit": max(int(kwargs.get("limit") or 5), config.recall_limit) * 3}))
                if tape is not None:
                    tape.record_recall(redact(query) or "", [m.model_dump(mode="json") for m in matches])
            if events is not None and matches:
                events.note(
                    "memory_recalled",
                    f"recalled {len(matches)} memories for: {query[:80]}",
                    {"query": query, "ids": [m.record.id for m in matches], "scores": [round(m.score, 4) for m in matches]},
                )
            return matches

    def shown(matches: list[Any]) -> list[Any]:
        """What a task is shown of a recall: not the run's own results (its tasks' context has them); the most relevant
        first, at most ``recall_limit``, within ``recall_chars`` in all (the last one shown cut to fit); each memory's
        words alone (CrewAI would list its categories and every metadata key, the run id among them, in the prompt)."""
        earlier = [m for m in matches if run_id is None or (m.record.metadata or {}).get("run_id") != run_id]
        kept, room = [], config.recall_chars
        for match in earlier[: config.recall_limit]:
            content = match.record.content
            if room < 40:  # too little left to say anything
                break
            if len(content) > room:
                content = content[:room].rsplit(" ", 1)[0] + " ..."
            room -= len(content)
            record = match.record.model_copy(update={"content": content, "metadata": {}, "categories": []})  # its words alone
            kept.append(match.model_copy(update={"record": record}))
        return kept

    if run_id is not None and events is not None:
        storage = _Recorded(storage, run_id, events)
    embedder = make_embedder(config)
    if warm and hasattr(embedder, "load"):
        embedder.load()
    options: dict[str, Any] = {
        "storage": storage,
        "embedder": embedder,
        "read_only": mode == "read_only",
        "root_scope": recall_root,
        "query_analysis_threshold": config.query_analysis_threshold,
    }
    if not thinking:  # no model: nothing a model would decide (merging similar memories) is asked of one
        options["consolidation_threshold"] = 1.0
    options["llm"] = llm if llm is not None and thinking else no_model()
    return SharedMemory(**options)
