"""Recorded model calls: ``--record FILE`` writes every request and its answer, ``--replay FILE`` answers from it.

A tape is a JSONL file, one exchange per line, in the order the answers came (and, with memory on, what each recall
of the memory gave, so a replay recalls the same whatever the store holds by then): the request's key (the response
cache's ``request_key``), the task and agent that asked, the model, the request as it was sent (its messages and tool
names, secrets redacted) and the answer in the response cache's codec (``cached_reply``), with the tokens and cost it
took when it was recorded. On replay every answer comes from the tape, and a request that is not on it stops the run
with exit 2 and a sentence naming the task and the first part of the request that differs from what was recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mamabear.errors import UsageError

VERSION = 1
SHOWN = 60  # characters shown either side of the first difference


class ReplayMiss(Exception):
    """A request the tape does not hold; ``str()`` is the sentence for the user."""


class RecordedFailure(Exception):
    """A call that failed when it was recorded, failing the same way on replay (its caller may live with it)."""


class Tape:
    def __init__(self, path: Path, replaying: bool, redact: Any = None) -> None:
        """``redact(text)``: the run's redactor, applied to what is written."""
        # A secret is written as ${NAME} (the run store's form), so a replay's outputs read as the recorded run's did.
        self.path, self.replaying = Path(path).expanduser(), replaying
        self.redact = getattr(redact, "referenced", None) or redact or (lambda text: text)
        self._lock = threading.Lock()
        self._answers: dict[str, list[dict]] = defaultdict(list)  # key -> its exchanges, in order
        self._used: dict[str, int] = defaultdict(int)  # key -> answers given from it
        self._by_task: dict[str, list[dict]] = defaultdict(list)  # task -> its exchanges, in order
        self._asked: dict[str, int] = defaultdict(int)  # task -> requests made in this replay
        self._count = 0
        self._recalls: dict[str, list[list[dict]]] = defaultdict(list)  # query -> what each recall of it gave, in order
        self._recalled: dict[str, int] = defaultdict(int)  # query -> recalls answered from it
        if replaying:
            self._load()
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text("")
            except OSError as exc:
                raise UsageError(f"cannot write the recording {self.path} ({exc.strerror or exc}).") from exc

    @classmethod
    def for_flags(cls, record: str | None, replay: str | None, redact: Any = None) -> Tape | None:
        if record and replay:
            raise UsageError("--record and --replay were both given; record once, then replay that file.")
        if not (record or replay):
            return None
        return cls(Path(record or replay or ""), replaying=bool(replay), redact=redact)

    def _load(self) -> None:
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read the recording {self.path} ({exc.strerror or exc}); record one with --record {self.path}.") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry.get("kind") == "recall":  # what the memory recalled for a query
                    self._recalls[str(entry["query"])].append(list(entry["matches"]))
                    continue
                key, task = entry["key"], entry.get("task") or "?"
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{self.path}:{number}: not a recorded exchange ({type(exc).__name__}); record the file again with --record.") from exc
            self._answers[key].append(entry)
            self._by_task[task].append(entry)

    # ------------------------------------------------------------ recording

    def _redacted(self, request: dict) -> dict:
        return json.loads(self.redact(json.dumps(request, ensure_ascii=False, default=str)))

    @staticmethod
    def key(request: dict) -> str:
        """The response cache's key of the request (redacted) as sent, whoever asked: the model, messages, tools,
        output format and sampling; not the server (a replay needs none), not the secrets (a recorded answer that
        held one holds the mask on replay, and so does the request made from it)."""
        from mamabear.llm.response_cache import request_key

        return request_key({k: v for k, v in request.items() if k not in ("task", "agent", "tools")})

    def record(self, request: dict, reply: dict, model: str, tokens_in: int, tokens_out: int, cost_usd: float) -> None:
        self._exchange(request, {"model": model, "reply": reply, "tokens_in": tokens_in, "tokens_out": tokens_out, "cost_usd": cost_usd})

    def record_failure(self, request: dict, error: str) -> None:
        """A call that failed for good (every try, every fallback): a replay fails it the same way, so a caller that
        went on without its answer (the memory falls back to defaults) goes on the same way."""
        self._exchange(request, {"model": request.get("model"), "error": error})

    def record_recall(self, query: str, matches: list[dict]) -> None:
        """What the memory recalled for ``query`` (its records and scores), so a replay recalls the same."""
        self._append({"kind": "recall", "query": query, "matches": matches})

    def _exchange(self, request: dict, outcome: dict) -> None:
        request = self._redacted(request)
        who = {k: request.get(k) for k in ("task", "agent")}
        self._append({"key": self.key(request), **who, "request": {k: request.get(k) for k in ("model", "messages", "tools")}, **outcome})

    def _append(self, entry: dict) -> None:
        """One line of the recording, numbered, stamped and redacted."""
        with self._lock:
            self._count += 1
            text = self.redact(json.dumps({"n": self._count, **entry, "at": round(time.time(), 3)}, ensure_ascii=False, default=str))
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(text + "\n")

    # ------------------------------------------------------------ replaying

    @staticmethod
    def with_values(reply: dict, env: Mapping[str, str]) -> dict:
        """A recorded answer with the secrets it holds as ${NAME} put back where the variable is set here (a replay in
        CI, without the secret, keeps the reference, as the recorded run's store did)."""
        from mamabear.config.redact import dereferenced

        return json.loads(dereferenced(json.dumps(reply, ensure_ascii=False), env, None, in_json=True))

    def recalled(self, query: str) -> list[dict]:
        """What the memory recalled for ``query`` when it was recorded (the next recall of it, when it was asked more
        than once); nothing when the recording holds no recall of it (a recording made with memory off)."""
        with self._lock:
            found = self._recalls.get(query)
            if not found:
                return []
            used = self._recalled[query]
            self._recalled[query] += 1
            return found[min(used, len(found) - 1)]

    def answer(self, request: dict) -> dict:
        """The recorded exchange for this request (the next one, when the same request was recorded more than
        once); ReplayMiss when there is none."""
        request = self._redacted(request)
        key = self.key(request)
        task = request.get("task") or "?"
        with self._lock:
            asked = self._asked[task]
            self._asked[task] += 1
            found = self._answers.get(key)
            if found:
                used = self._used[key]
                self._used[key] += 1
                return found[min(used, len(found) - 1)]
        raise ReplayMiss(self._miss(task, asked, request))

    def _miss(self, task: str, asked: int, request: dict) -> str:
        recorded = self._by_task.get(task) or []
        where = f"task '{task}' asked the model something {self.path} does not hold"
        if not recorded:
            tasks = ", ".join(sorted(self._by_task)) or "none"
            return f"{where}: no request of that task was recorded (recorded tasks: {tasks}); record it again with --record."
        before = recorded[min(asked, len(recorded) - 1)]
        return f"{where}: {first_difference(before, request)}; record it again with --record."


def first_difference(recorded: dict, request: dict) -> str:
    """Where ``request`` first departs from the ``recorded`` exchange, in a few words and the text around it."""
    if recorded.get("request", {}).get("model") != request.get("model"):
        return f"the model is {request.get('model')}, recorded {recorded.get('request', {}).get('model')}"
    was, now = recorded.get("request", {}).get("messages") or [], request.get("messages") or []
    for index, (old, new) in enumerate(zip(was, now, strict=False), start=1):
        if old == new:
            continue
        old_text, new_text = _text(old), _text(new)
        at = next((i for i, (a, b) in enumerate(zip(old_text, new_text, strict=False)) if a != b), min(len(old_text), len(new_text)))
        role = new.get("role", "?") if isinstance(new, dict) else "?"
        return f"message {index} ({role}) differs at character {at + 1}: recorded {_around(old_text, at)!r}, now {_around(new_text, at)!r}"
    if len(was) != len(now):
        return f"it has {len(now)} messages, recorded {len(was)}"
    if recorded.get("request", {}).get("tools") != request.get("tools"):
        return f"its tools are {request.get('tools')}, recorded {recorded.get('request', {}).get('tools')}"
    return "its sampling or output format differs"


def _text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else message
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)


def _around(text: str, at: int) -> str:
    return ("..." if at > SHOWN else "") + text[max(0, at - SHOWN) : at + SHOWN] + ("..." if len(text) > at + SHOWN else "")
