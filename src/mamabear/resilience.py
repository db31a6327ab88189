"""Resilient model calls: retries with backoff, fallback to the next model, and the run's guard.

Every agent's LLM is its provider's own CrewAI class (OpenAICompletion, GeminiCompletion,
...) with ``ResilientCalls`` mixed in front, so CrewAI sees the LLM it expects and only
``call`` changes. Each attempt goes through the provider class's real ``call``, which
emits CrewAI's LLM events, so every attempt lands in the store. The SDKs' own retries
and CrewAI's rate-limit retry are switched off: this module owns retrying.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crewai.llms.retry import _active_llm_rate_limit_retry

from mamabear.cost import Pricer
from mamabear.guard import Guard, RunStopped
from mamabear.models import RetryPolicy

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
TRANSIENT_NAMES = {
    "APITimeoutError", "APIConnectionError", "Timeout", "TimeoutException", "ConnectTimeout", "ReadTimeout",
    "ConnectError", "ReadError", "RemoteProtocolError", "WriteError", "ServerError", "ServiceUnavailableError",
    "InternalServerError", "RateLimitError", "OverloadedError",
}
RETRY_NOTE = ("Note: a previous attempt at this task failed with this error: {error}\n"
              "Take that into account and complete the task.")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _status(exc: BaseException) -> int | None:
    for value in (getattr(exc, "status_code", None), getattr(getattr(exc, "response", None), "status_code", None),
                  getattr(exc, "code", None)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def is_transient(exc: BaseException) -> bool:
    """A fault worth another try: rate limits, server errors, timeouts, dropped connections."""
    for item in _chain(exc):
        status = _status(item)
        if status is not None:
            return status in TRANSIENT_STATUS
        if type(item).__name__ in TRANSIENT_NAMES or isinstance(item, (TimeoutError, ConnectionError)):
            return True
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (Retry-After, retry-after-ms), if it said."""
    for item in _chain(exc):
        headers = getattr(getattr(item, "response", None), "headers", None) or getattr(item, "headers", None)
        if not headers or not hasattr(headers, "get"):
            continue
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            if value is None:
                continue
            try:
                return max(0.0, float(value) * scale)
            except (TypeError, ValueError):
                continue  # an HTTP date: fall back to our own backoff
    return None


def backoff(retry: int, policy: RetryPolicy, asked: float | None, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``retry`` (1-based): the provider's ask, else exponential with full jitter."""
    if asked is not None:
        return min(asked, policy.max_backoff_s)
    ceiling = min(policy.backoff_s * 2 ** (retry - 1), policy.max_backoff_s)
    return ceiling / 2 + rand() * ceiling / 2


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class CallControl:
    """What every resilient LLM of one run shares: the guard, the policy, the accounting."""

    guard: Guard
    policy: RetryPolicy
    pricer: Pricer
    on_wait: Callable[[str | None], None] = lambda _why: None  # tells the progress view about a backoff
    notes: dict[str, str] = field(default_factory=dict)  # task id -> error to tell the agent on its retry
    lock: threading.Lock = field(default_factory=threading.Lock)


class ResilientCalls:
    """Mixed in front of a CrewAI provider class; see ``resilient_class``."""

    def configure(self, control: CallControl, model_id: str, fallbacks: list[tuple[str, Callable[[], Any]]]) -> None:
        self._mb_control = control
        self._mb_model_id = model_id
        self._mb_fallbacks = fallbacks  # (configured model id, factory building its LLM), built on first need
        self._mb_built: dict[str, Any] = {}

    def call(self, *args: Any, **kwargs: Any) -> Any:
        control: CallControl | None = self._mb_control
        if control is None:
            return super().call(*args, **kwargs)  # type: ignore[misc]
        args, kwargs = self._with_retry_note(control, args, kwargs)
        token = _active_llm_rate_limit_retry.set(True)  # CrewAI's own rate-limit retry stays out of the way
        try:
            return self._call_chain(control, args, kwargs)
        finally:
            _active_llm_rate_limit_retry.reset(token)

    def _call_chain(self, control: CallControl, args: tuple, kwargs: dict) -> Any:
        chain: list[tuple[str, Callable[[], Any]]] = [(self._mb_model_id, lambda: self), *self._mb_fallbacks]
        last: BaseException | None = None
        for model_id, factory in chain:
            llm = self._mb_built.get(model_id) or factory()
            self._mb_built[model_id] = llm
            for attempt in range(1, control.policy.attempts + 1):
                control.guard.check()
                try:
                    return self._attempt(control, llm, model_id, args, kwargs)
                except RunStopped:
                    raise
                except Exception as exc:
                    if not is_transient(exc):
                        self._remember_failure(control, kwargs, exc)
                        raise
                    last = exc
                    if attempt == control.policy.attempts:
                        break
                    delay = backoff(attempt, control.policy, retry_after(exc))
                    control.on_wait(f"retrying {model_id} in {delay:.1f}s ({_error_line(exc)})")
                    try:
                        control.guard.wait(delay)
                    finally:
                        control.on_wait(None)
        assert last is not None
        self._remember_failure(control, kwargs, last)
        raise last

    def _attempt(self, control: CallControl, llm: Any, model_id: str, args: tuple, kwargs: dict) -> Any:
        if llm is not self:
            llm.stop = list(self.stop)  # type: ignore[attr-defined]
        before = dict(llm._token_usage)
        result = super().call(*args, **kwargs) if llm is self else llm.call(*args, **kwargs)  # type: ignore[misc]
        tokens_in = llm._token_usage["prompt_tokens"] - before["prompt_tokens"]
        tokens_out = llm._token_usage["completion_tokens"] - before["completion_tokens"]
        control.guard.add(control.pricer.cost(model_id, tokens_in, tokens_out), tokens_in + tokens_out)
        return result

    @staticmethod
    def _task_key(kwargs: dict) -> str | None:
        task = kwargs.get("from_task")
        return str(task.id) if task is not None else None

    def _remember_failure(self, control: CallControl, kwargs: dict, exc: BaseException) -> None:
        key = self._task_key(kwargs)
        if key is not None:
            with control.lock:
                control.notes[key] = _error_line(exc)

    def _with_retry_note(self, control: CallControl, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """On the first call of a retried task, tell the agent what went wrong last time."""
        key = self._task_key(kwargs)
        messages = args[0] if args else kwargs.get("messages")
        if key is None or key not in control.notes or not isinstance(messages, list):
            return args, kwargs
        if any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            return args, kwargs  # not a fresh start: the note went out already
        with control.lock:
            error = control.notes.pop(key, None)
        if error is None:
            return args, kwargs
        users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
        if not users or not isinstance(messages[users[-1]].get("content"), str):
            return args, kwargs
        noted = list(messages)
        last = dict(noted[users[-1]])
        last["content"] = f"{last['content']}\n\n{RETRY_NOTE.format(error=error)}"
        noted[users[-1]] = last
        if args:
            return (noted, *args[1:]), kwargs
        return args, {**kwargs, "messages": noted}


_classes: dict[type, type] = {}


def resilient_class(native: type) -> type:
    """The provider class with ResilientCalls in front (one per provider class)."""
    if native not in _classes:
        from pydantic import PrivateAttr

        namespace = {
            "__module__": __name__,
            "__annotations__": {"_mb_control": Any, "_mb_model_id": str, "_mb_fallbacks": Any, "_mb_built": Any},
            "_mb_control": PrivateAttr(default=None),
            "_mb_model_id": PrivateAttr(default=""),
            "_mb_fallbacks": PrivateAttr(default_factory=list),
            "_mb_built": PrivateAttr(default_factory=dict),
        }
        _classes[native] = type(f"Resilient{native.__name__}", (ResilientCalls, native), namespace)
    return _classes[native]
