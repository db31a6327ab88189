"""Resilient model calls: retries with backoff, fallback to the next model, and the run's guard.

Every agent's LLM is its provider's own CrewAI class (OpenAICompletion, GeminiCompletion,
...) with ``ResilientCalls`` mixed in front, so CrewAI sees the LLM it expects and only
``call`` changes. Each attempt goes through the provider class's real ``call``, which
emits CrewAI's LLM events, so every attempt lands in the store. The SDKs' own retries
and CrewAI's rate-limit retry are switched off: this module owns retrying.

Before a request leaves, the response cache may answer it (identical request, no cost),
and the machine-wide quota may make it wait (requests and tokens per minute per provider).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from crewai.hooks.dispatch import HookAborted

from mamabear.compat.crewai import call_arguments, own_rate_limit_retry_off, token_usage
from mamabear.config.durations import fmt_seconds
from mamabear.config.models import RetryPolicy, provider_of
from mamabear.errors import EXIT_FAILED, EXIT_USAGE, MamabearError
from mamabear.llm.guard import Guard, RunStopped
from mamabear.llm.pricing import Pricer
from mamabear.llm.wire import chain, normalised, overflowed, read_structured, refusal, status_of, structured_refused, with_schema
from mamabear.status import Status

TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 529}
TRANSIENT_NAMES = {
    "APITimeoutError",
    "APIConnectionError",
    "Timeout",
    "TimeoutException",
    "ConnectTimeout",
    "ReadTimeout",
    "ConnectError",
    "ReadError",
    "RemoteProtocolError",
    "WriteError",
    "ServerError",
    "ServiceUnavailableError",
    "InternalServerError",
    "RateLimitError",
    "OverloadedError",
}
# An outage: the server is not there (refused, dropped, silent) or a gateway in front of it says so. Not a rate limit
# (429), nor a 500 or an overload: a server that answers those is up, and the call's own tries are what they get.
OUTAGE_STATUS = {502, 503, 504}
OUTAGE_NAMES = TRANSIENT_NAMES - {"RateLimitError", "OverloadedError", "InternalServerError", "ServerError"}
OUTAGE_MAX_BACKOFF_S = 30.0  # the longest wait between two tries of a server that is down: its return is seen soon
OUTAGE_NOTE_EVERY_S = 60.0  # how often the run's log says the server is still unreachable
RETRY_NOTE = "Note: a previous attempt at this task failed with this error: {error}\nTake that into account and complete the task."


def is_transient(exc: BaseException) -> bool:
    """A fault worth another try: rate limits, server errors, timeouts, dropped connections; never a request the server
    refused as invalid (a 5xx whose body is a validation report is such a refusal: llama-cpp-python's) or one too long."""
    if refusal(exc) is not None or overflowed(exc):
        return False
    return _faulted(exc, TRANSIENT_STATUS, TRANSIENT_NAMES)


def is_outage(exc: BaseException) -> bool:
    """A transient fault that says the server is not there: refused or dropped connections, timeouts, 502/503/504."""
    return is_transient(exc) and _faulted(exc, OUTAGE_STATUS, OUTAGE_NAMES)


def _faulted(exc: BaseException, statuses: set[int], names: set[str]) -> bool:
    """Whether the first HTTP status in the exception's chain is one of ``statuses``, or (with none) an exception of
    the chain is named in ``names`` or is a timeout or a connection error."""
    for item in chain(exc):
        status = status_of(item)
        if status is not None:
            return status in statuses
        if type(item).__name__ in names or isinstance(item, (TimeoutError, ConnectionError)):
            return True
    return False


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (Retry-After, retry-after-ms), if it said."""
    for item in chain(exc):
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


def _wait(control: CallControl, seconds: float, why: str, kind: str) -> None:
    """Wait visibly (the progress view and the run's log say why) and stoppably (the guard)."""
    control.events.waiting(why, kind)
    try:
        control.guard.wait(seconds)
    finally:
        control.events.waiting(None, kind)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class CacheHit:
    """A call the response cache answered."""

    model: str  # the configured model the agent asked for
    answered_by: str  # the model whose answer was cached (a fallback, maybe)
    task: Any
    agent: Any
    tokens_in: int
    tokens_out: int
    saved_usd: float  # what the cached answer cost when it was bought
    seconds: float
    source: str = "cache"  # or "recording" (--replay)


class CallEvents(Protocol):
    """What a run hears from its model calls besides CrewAI's own events (the run's tracker implements it)."""

    def waiting(self, why: str | None, kind: str) -> None: ...  # a backoff or quota wait begins (why) or ends (None)

    def cache_hit(self, hit: CacheHit) -> None: ...  # a call the response cache answered: no CrewAI event exists for it

    def note(self, kind: str, message: str, data: dict | None = None) -> None: ...  # something the run's log should say


class NoCallEvents:
    """For model calls outside a run (doctor, benchmarks): nobody listens."""

    def waiting(self, why: str | None, kind: str) -> None:
        pass

    def cache_hit(self, hit: CacheHit) -> None:
        pass

    def note(self, kind: str, message: str, data: dict | None = None) -> None:
        pass


@dataclass
class CallControl:
    """What every resilient LLM of one run shares: the guard, the policy, the accounting, the cache and the quotas."""

    guard: Guard
    policy: RetryPolicy
    pricer: Pricer
    events: CallEvents = field(default_factory=NoCallEvents)
    cache: Any = None  # response_cache.ResponseCache, or None (--no-cache)
    cache_ttl_s: float | None = None
    quotas: Any = None  # quota.QuotaBook, or None when no provider has a quota
    notes: dict[str, str] = field(default_factory=dict)  # task id -> error to tell the agent on its retry
    secret: Callable[[str], bool] = lambda _text: False  # does this text hold a secret? Such a request or answer is never cached
    tape: Any = None  # tape.Tape: --record writes each exchange to it, --replay answers only from it
    images_keep: int = 3  # screenshots a request carries (the latest), of those the tools took (images.py)
    sees: Callable[[str], bool] = lambda _model: True  # does this model take images? (a blind one is told where they are)
    images_root: Any = None  # Path: only screenshots under it are shown (the sandboxes' folder); None shows none
    # How a route that refused json_schema is asked for structured output instead: (model, server) -> "json_object"
    # (the schema in the prompt and a JSON-only answer, which llama.cpp constrains to the schema), then "words".
    structured: dict[tuple[str, str | None], str] = field(default_factory=dict)
    # The cache keys of the requests this run has made. A request made again in the same run (a retry, a re-plan, a
    # re-ask that repeats itself) is sent to the model: the cache's answer is the one that did not do.
    asked: set[str] = field(default_factory=set)
    run_id: str | None = None  # the run the calls are for: each cached answer says which run bought it
    # The run's earlier attempts' answers are known not to have done (a mission carried on after it ended stuck or
    # failed): the cache does not give this run its own answers back. Otherwise it does: a step cut short by a crash is
    # done again at no cost.
    own_answers_stale: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # where a replay puts back the secrets a recording holds as ${NAME}
    # The servers (a base URL, or a provider's own API) that have answered in this run, for any model: one that stops
    # answering is an outage, waited for up to policy.outage_wait; one that never answered is reported after its tries,
    # as a wrong URL is.
    answered: set[str] = field(default_factory=set)
    outages: dict[tuple[str, str | None], Outage] = field(default_factory=dict)  # a chain's first route -> its outage now
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Outage:
    """A model server that answered earlier in the run and now does not, as every call waiting for it shares it."""

    started: float  # time.monotonic() when the first call that met it began
    noted: float  # when the run's log last said so
    server: str  # "openai/gpt-4.1-mini at http://127.0.0.1:8080/v1"


def _server_name(model_id: str, base_url: Any) -> str:
    """The model and its server as a sentence names them; never a password or query the URL may carry."""
    if not base_url:
        return model_id
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(base_url))
        where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "") + parts.path.rstrip("/")
    except ValueError:
        where = "its server"
    return f"{model_id} at {where}"


SAMPLING = ("temperature", "top_p", "seed", "stop", "response_format", "reasoning_effort")
OUTPUT_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")  # one cap, named as each provider's class takes it


def sampling(llm: Any) -> dict[str, Any]:
    """How an LLM samples, as a recording and the cache key it: the output cap under one name, whichever the class
    takes (a run recorded against a --base-url server replays without one, where OpenAI's class names it otherwise)."""
    found = {name: getattr(llm, name, None) for name in SAMPLING}
    found["max_tokens"] = next((cap for cap in (getattr(llm, name, None) for name in OUTPUT_CAPS) if cap is not None), None)
    return found


def estimate_tokens(messages: Any) -> int:
    """A rough input size for the token quota (about four characters a token); corrected by the real usage after the call."""
    return max(1, len(json.dumps(messages, default=str, ensure_ascii=False)) // 4)


@dataclass(frozen=True)
class Caller:
    """Who a model call is made for, in the thread that makes it. CrewAI's event handlers run in a copy of that
    thread's context, so the tracker can attribute a call whose event names no agent of the run (a conversion to the
    task's output model, a guardrail's judge, a knowledge query's rewrite, the memory's analysis) to the agent whose
    LLM made it, and tell a call that did not pass this path (``CALLER`` unset) from one that did."""

    role: str | None  # "memory" for the memory's own model; None for an agent's
    chain: tuple[str, ...]  # configured model ids: the route's own, then its fallbacks
    serves: str | None = None  # the specialist (planned agent id) whose LLM this is


CALLER: ContextVar[Caller | None] = ContextVar("mamabear_llm_caller", default=None)


class ResilientCalls:
    """Mixed in front of a CrewAI provider class; see ``resilient_class``."""

    _mb_role: str | None  # "memory" for the memory's own model; None for an agent's (a pydantic private attribute)
    _mb_serves: str | None  # the specialist whose LLM this is (a pydantic private attribute)

    def configure(self, control: CallControl, model_id: str, fallbacks: list[tuple[str, Callable[[], Any]]], serves: str | None = None) -> None:
        self._mb_control = control
        self._mb_model_id = model_id
        self._mb_fallbacks = fallbacks  # (configured model id, factory building its LLM), built on first need
        self._mb_built: dict[str, Any] = {}
        self._mb_serves = serves

    def call(self, *args: Any, **kwargs: Any) -> Any:
        control: CallControl | None = self._mb_control
        if control is None:
            return super().call(*args, **kwargs)  # type: ignore[misc]  # a mixin: the provider class comes after it
        caller = CALLER.set(Caller(self._mb_role, (self._mb_model_id, *(m for m, _ in self._mb_fallbacks)), self._mb_serves))
        try:
            return self._resilient_call(control, args, kwargs)
        finally:
            CALLER.reset(caller)

    def _resilient_call(self, control: CallControl, args: tuple, kwargs: dict) -> Any:
        messages = call_arguments(args, kwargs).get("messages")
        fixed = normalised(messages)
        if fixed is not messages:
            args, kwargs = _with_messages(args, kwargs, fixed)
        args, kwargs = self._with_retry_note(control, args, kwargs)
        asked = call_arguments(args, kwargs)  # before screenshots are attached: what a recording keys and keeps
        args, kwargs = _with_images(args, kwargs, control.images_keep, not control.sees(self._mb_model_id), control.images_root)
        named = call_arguments(args, kwargs)
        if control.tape is not None and control.tape.replaying:
            return self._from_tape(control, named, asked)
        key = self._cache_key(control, named)
        if key is not None:
            with control.lock:
                again = key in control.asked
                control.asked.add(key)
            cached = None if again else self._from_cache(control, key, named)  # a hit is recorded under CALLER too
            if cached is not None:
                return cached
        with own_rate_limit_retry_off():
            try:
                result, answered_by, tokens_in, tokens_out, cost = self._call_chain(control, args, kwargs)
            except HookAborted:  # a stop of the run or of the step, not the call's failure
                raise
            except Exception as exc:
                if control.tape is not None:  # a failure its caller may live with (the memory's): replayed as it was
                    control.tape.record_failure(self._tape_request(asked), _error_line(exc))
                raise
        if key is not None:
            self._to_cache(control, key, named, result, answered_by, tokens_in, tokens_out, cost)
        if control.tape is not None:
            self._to_tape(control, asked, result, answered_by, tokens_in, tokens_out, cost)
        return result

    # ------------------------------------------------------------ recordings (--record, --replay)

    def _tape_request(self, named: dict[str, Any]) -> dict[str, Any]:
        """The request as a recording holds it: who asked, and what (the recording keys it without the server)."""
        from mamabear.llm.images import unmarked

        task, agent = named.get("from_task"), named.get("from_agent")
        response_model = named.get("response_model")
        return {
            "task": getattr(task, "name", None) or (str(getattr(task, "description", ""))[:60] or self._mb_role),
            "agent": getattr(agent, "role", None),
            "model": self._mb_model_id,
            "messages": unmarked(named.get("messages")),
            "tools": [t.get("function", t).get("name") if isinstance(t, dict) else str(t) for t in named.get("tools") or []],
            "tool_schemas": named.get("tools"),
            "response_model": response_model.model_json_schema() if response_model is not None else None,
            "sampling": sampling(self),
        }

    def _to_tape(self, control: CallControl, named: dict[str, Any], result: Any, answered_by: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        from mamabear.llm.cached_reply import encode

        reply = encode(result, named.get("response_model"))
        if reply is not None and control.tape is not None:
            control.tape.record(self._tape_request(named), reply, answered_by, tokens_in, tokens_out, cost)

    def _from_tape(self, control: CallControl, named: dict[str, Any], asked: dict[str, Any]) -> Any:
        """The recorded answer; a request the recording does not hold stops the run (exit 2), saying where it differs.
        ``asked``: the request before screenshots were attached, as recordings key it."""
        from mamabear.llm.cached_reply import decode
        from mamabear.llm.tape import RecordedFailure, ReplayMiss

        assert control.tape is not None
        control.guard.check()
        started = time.perf_counter()
        request = self._tape_request(asked)
        try:
            entry = control.tape.answer(request)
        except ReplayMiss as exc:
            control.guard.request_stop(Status.FAILED, f"--replay: {exc}", EXIT_USAGE)
            control.guard.check()
            raise
        if "error" in entry:
            raise RecordedFailure(entry["error"])
        result = decode(control.tape.with_values(entry["reply"], control.env), named.get("response_model"))
        if result is None:
            control.guard.request_stop(Status.FAILED, f"--replay: the answer recorded for task '{request['task']}' cannot be read back here", EXIT_USAGE)
            control.guard.check()
        control.events.cache_hit(self._hit(named, entry, started, "recording"))
        return result

    # ------------------------------------------------------------ response cache

    def _cache_key(self, control: CallControl, named: dict[str, Any]) -> str | None:
        """The request's identity: model, messages, tools, sampling and output format; None when it must not be cached."""
        if control.cache is None or named.get("available_functions"):  # the provider would run a tool inside the call
            return None
        from mamabear.llm.response_cache import request_key

        if control.secret(json.dumps(named.get("messages"), default=str, ensure_ascii=False)):
            return None  # the cache is a file (or a shared Redis): a secret in the prompt would be stored there in clear
        response_model = named.get("response_model")
        return request_key(
            {
                "v": 1,
                "model": self._mb_model_id,
                "base_url": getattr(self, "base_url", None),
                "messages": named.get("messages"),
                "tools": named.get("tools"),
                "response_model": response_model.model_json_schema() if response_model is not None else None,
                "sampling": sampling(self),
            }
        )

    def _from_cache(self, control: CallControl, key: str, named: dict[str, Any]) -> Any:
        from mamabear.llm.cached_reply import decode

        started = time.perf_counter()
        cache = control.cache
        if cache is None:
            return None
        try:
            entry = cache.get(key)
        except MamabearError as exc:
            self._cache_lost(control, exc)
            return None
        if entry and control.own_answers_stale and control.run_id is not None and entry.get("run_id") == control.run_id:
            return None
        result = decode(entry["reply"], named.get("response_model")) if entry and isinstance(entry.get("reply"), dict) else None
        if result is None:
            return None
        control.guard.check()  # a cancelled or stopped run stops here too
        control.events.cache_hit(self._hit(named, entry, started, "cache"))
        return result

    def _hit(self, named: dict[str, Any], entry: dict[str, Any], started: float, source: str) -> CacheHit:
        """A call answered without the provider (the cache's or a recording's ``entry``), as the run records it."""
        return CacheHit(
            model=self._mb_model_id,
            answered_by=str(entry.get("model") or self._mb_model_id),
            task=named.get("from_task"),
            agent=named.get("from_agent"),
            tokens_in=int(entry.get("tokens_in") or 0),
            tokens_out=int(entry.get("tokens_out") or 0),
            saved_usd=float(entry.get("cost_usd") or 0.0),
            seconds=time.perf_counter() - started,
            source=source,
        )

    def _to_cache(
        self, control: CallControl, key: str, named: dict[str, Any], result: Any, answered_by: str, tokens_in: int, tokens_out: int, cost: float
    ) -> None:
        from mamabear.llm.cached_reply import encode

        reply = encode(result, named.get("response_model"))
        if reply is None or (reply["type"] == "text" and not reply["text"].strip()):
            return  # an empty answer is a fault worth asking again, not an answer worth keeping
        if control.secret(json.dumps(reply, default=str, ensure_ascii=False)):
            return  # an answer that repeats a secret is not kept either
        cache = control.cache
        if cache is None:
            return
        try:
            cache.put(
                key,
                {
                    "reply": reply,
                    "model": answered_by,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "cost_usd": cost,
                    "created_at": time.time(),
                    "run_id": control.run_id,
                },
                control.cache_ttl_s,
            )
        except MamabearError as exc:
            self._cache_lost(control, exc)

    @staticmethod
    def _cache_lost(control: CallControl, exc: MamabearError) -> None:
        """A cache that fails mid-run is switched off for the rest of it; the run goes on without it."""
        with control.lock:
            if control.cache is None:
                return
            control.cache = None
        control.events.note("cache_failed", f"response cache switched off for this run: {exc.message}")

    # ------------------------------------------------------------ retries, fallback and quotas

    def _call_chain(self, control: CallControl, args: tuple, kwargs: dict) -> tuple[Any, str, int, int, float]:
        """The first answer of the chain: (result, the model that gave it, its input and output tokens). A chain whose
        every try met an outage of a server that answered earlier in the run is tried again until it is back, or until
        ``outage_wait`` has passed since the outage began (then the run stops, resumable)."""
        chain: list[tuple[str, Callable[[], Any]]] = [(self._mb_model_id, lambda: self), *self._mb_fallbacks]
        began, attempts, round_ = time.monotonic(), control.policy.attempts, 0
        while True:
            answer, last = self._try_chain(control, chain, attempts, args, kwargs)
            if answer is not None:
                self._outage_over(control)
                return answer
            assert last is not None
            if is_outage(last) and self._answered_before(control, chain):
                round_ += 1
                self._ride_out(control, last, began, round_)
                attempts = 1  # each model of the chain once a round: the waits are the outage's
                continue
            if attempts < control.policy.attempts:  # back, but busy (a 429, a 500): tried as any call is
                attempts = control.policy.attempts
                continue
            self._remember_failure(control, kwargs, last)
            raise last

    def _try_chain(
        self, control: CallControl, chain: list[tuple[str, Callable[[], Any]]], attempts: int, args: tuple, kwargs: dict
    ) -> tuple[tuple[Any, str, int, int, float] | None, BaseException | None]:
        """Each model of the chain ``attempts`` times on a transient fault: the first answer, or the last fault."""
        last: BaseException | None = None
        for model_id, factory in chain:
            llm = self._mb_built.get(model_id) or factory()
            self._mb_built[model_id] = llm
            attempt = 1
            while attempt <= attempts:
                control.guard.check()
                try:
                    return self._attempt(control, llm, model_id, args, kwargs), None
                except RunStopped:
                    raise
                except Exception as exc:
                    if self._learn_structured(control, llm, model_id, args, kwargs, exc):
                        continue  # asked again at once, the schema in the prompt: not a retry of a fault
                    if not is_transient(exc):
                        self._remember_failure(control, kwargs, exc)
                        raise
                    last = exc
                    if attempt == attempts:
                        break
                    delay = backoff(attempt, control.policy, retry_after(exc))
                    _wait(control, delay, f"retrying {model_id} in {delay:.1f}s ({_error_line(exc)})", "llm_retry")
                    attempt += 1
        return None, last

    # ------------------------------------------------------------ outages

    def _answered_before(self, control: CallControl, chain: list[tuple[str, Callable[[], Any]]]) -> bool:
        """Whether a server of the chain has answered in this run: its faults now are an outage, not a wrong setup."""
        servers = [self._server_of(self._mb_built[m], m) for m, _ in chain if m in self._mb_built]
        with control.lock:
            return any(server in control.answered for server in servers)

    @classmethod
    def _server_of(cls, llm: Any, model_id: str) -> str:
        """Where a model is served: its base URL, or its provider's own API."""
        return cls._route_key(llm, model_id)[1] or provider_of(model_id)

    def _ride_out(self, control: CallControl, exc: BaseException, began: float, round_: int) -> None:
        """Wait, stoppably, before the next round of an outage, saying so when it begins and once a minute; once it
        has lasted ``outage_wait``, stop the run (failed, exit 1, resumable) with one sentence."""
        key = self._route_key(self, self._mb_model_id)
        now = time.monotonic()
        with control.lock:
            outage = control.outages.get(key)
            first = outage is None
            if outage is None:
                outage = control.outages[key] = Outage(began, now, _server_name(self._mb_model_id, key[1]))
            elif began < outage.started:
                outage.started = began
            say = not first and now >= outage.noted + OUTAGE_NOTE_EVERY_S
            if say:
                outage.noted = now
            due = outage.noted + OUTAGE_NOTE_EVERY_S
        lasted, patience = now - outage.started, control.policy.outage_wait_s
        if lasted >= patience:
            self._outage_stop(control, outage, lasted, exc)
        if first:
            why = _error_line(exc).rstrip(".")
            said = f"the model server ({outage.server}) is unreachable ({why}); retrying for up to {fmt_seconds(patience)}"
            control.events.note("model_outage", said, {"model": self._mb_model_id, "server": outage.server, "outage_wait_s": patience})
        elif say:
            said = f"model server unreachable for {fmt_seconds(lasted)}; retrying"
            control.events.note("model_outage", said, {"model": self._mb_model_id, "server": outage.server, "seconds": round(lasted, 1)})
        policy = control.policy
        capped = policy.model_copy(update={"max_backoff_s": min(policy.max_backoff_s, OUTAGE_MAX_BACKOFF_S)})
        delay = backoff(round_, capped, retry_after(exc))
        # Never past the end of the wait, and awake when the next progress line is due (a try comes first).
        control.guard.wait(min(delay, max(0.0, outage.started + patience - now), max(0.05, due - now)))

    @staticmethod
    def _outage_stop(control: CallControl, outage: Outage, lasted: float, exc: BaseException) -> None:
        """The outage lasted past ``outage_wait``: the run stops, failed and resumable, as a failing provider's does."""
        why = _error_line(exc).rstrip(".")
        said = f"the model server ({outage.server}) was unreachable for {fmt_seconds(lasted)} ({why}); the run stopped, to be resumed once it is back"
        control.guard.request_stop(Status.FAILED, said, EXIT_FAILED)
        control.guard.check()

    def _outage_over(self, control: CallControl) -> None:
        """The chain answered: an outage it was in is over, and the run's log says so once."""
        key = self._route_key(self, self._mb_model_id)
        with control.lock:
            outage = control.outages.pop(key, None) if control.outages else None
        if outage is not None:
            lasted = time.monotonic() - outage.started
            said = f"model server back after {fmt_seconds(lasted)}"
            control.events.note("model_back", said, {"model": self._mb_model_id, "server": outage.server, "seconds": round(lasted, 1)})

    @staticmethod
    def _route_key(llm: Any, model_id: str) -> tuple[str, str | None]:
        return model_id, getattr(llm, "base_url", None) or getattr(llm, "api_base", None)

    def _learn_structured(self, control: CallControl, llm: Any, model_id: str, args: tuple, kwargs: dict, exc: BaseException) -> bool:
        """A server that refused ``json_schema`` is asked for a JSON object with the schema in the prompt from now on
        (this run, this route); one that refuses that too, with the schema in words only."""
        key = self._route_key(llm, model_id)
        level = control.structured.get(key)
        if call_arguments(args, kwargs).get("response_model") is None or level == "words" or not structured_refused(exc):
            return False
        with control.lock:
            control.structured[key] = "words" if level == "json_object" else "json_object"
        how = "a JSON object" if level is None else "words only"
        said = f"{model_id} does not take a {level or 'json_schema'} response format; asking with the schema in the prompt, for {how}"
        control.events.note("structured_in_words", said)
        return True

    def _attempt(self, control: CallControl, llm: Any, model_id: str, args: tuple, kwargs: dict) -> tuple[Any, str, int, int, float]:
        """One try of one model: its result, and what it cost, priced once (the guard's spend and the cache's record)."""
        if llm is not self:
            llm.stop = list(self.stop)  # type: ignore[attr-defined]  # every CrewAI provider LLM has stop
        provider = provider_of(model_id)
        estimate = self._take_quota(control, provider, args, kwargs)
        wanted: Any = call_arguments(args, kwargs).get("response_model")
        level = control.structured.get(self._route_key(llm, model_id)) if wanted is not None else None
        target = llm
        if level is not None:  # the route takes no json_schema: the schema in the prompt
            named = call_arguments(args, kwargs)
            args, kwargs = (), {**named, "response_model": None, "messages": with_schema(named.get("messages"), wanted)}
            if level == "json_object":  # a copy, so the agent's own calls are not changed; llama.cpp honours "schema"
                target = llm.model_copy(update={"response_format": {"type": "json_object", "schema": wanted.model_json_schema()}})
        before = token_usage(target)
        tokens_in = tokens_out = cached = 0
        try:
            # The provider class's own call, past this mixin (a fallback's LLM is the plain class).
            native = isinstance(target, ResilientCalls)
            result = super(ResilientCalls, target).call(*args, **kwargs) if native else target.call(*args, **kwargs)  # type: ignore[misc]  # a mixin
            after = token_usage(target)
            tokens_in = after["prompt_tokens"] - before["prompt_tokens"]
            tokens_out = after["completion_tokens"] - before["completion_tokens"]
            cached = after.get("cached_prompt_tokens", 0) - before.get("cached_prompt_tokens", 0)  # at the provider's cached rate
        finally:
            if estimate is not None:
                control.quotas.settle(provider, estimate, tokens_in + tokens_out)
        server = self._server_of(llm, model_id)
        if server not in control.answered:
            with control.lock:
                control.answered.add(server)
        cost = control.pricer.cost(model_id, tokens_in, tokens_out, cached)
        control.guard.add(cost, tokens_in + tokens_out)
        if level is not None:
            result = read_structured(result, wanted)  # a model's answer that does not read as the schema fails the call
        return result, model_id, tokens_in, tokens_out, cost

    @staticmethod
    def _take_quota(control: CallControl, provider: str, args: tuple, kwargs: dict) -> int | None:
        """Wait, visibly and stoppably, until the provider's machine-wide quota lets this request go; the tokens booked."""
        if control.quotas is None or control.quotas.limits(provider) is None:
            return None
        estimate = estimate_tokens(call_arguments(args, kwargs).get("messages"))

        control.quotas.acquire(provider, estimate, lambda seconds, why: _wait(control, seconds, f"waiting {seconds:.1f}s for the {why}", "quota_wait"))
        return estimate

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
        return _with_messages(args, kwargs, noted)


_classes: dict[type, type] = {}


def _with_images(args: tuple, kwargs: dict, keep: int, blind: bool, root: Any) -> tuple[tuple, dict]:
    """The call's messages with the screenshots its tools took as images (images.py); unchanged without any."""
    from mamabear.llm.images import with_images

    messages = call_arguments(args, kwargs).get("messages")
    shown = with_images(messages, keep, blind, root)
    return (args, kwargs) if shown is messages else _with_messages(args, kwargs, shown)


def _with_messages(args: tuple, kwargs: dict, messages: Any) -> tuple[tuple, dict]:
    """The call's arguments with other messages, passed as they were (first positional, or by name)."""
    if "messages" in kwargs or not args:
        return args, {**kwargs, "messages": messages}
    return (messages, *args[1:]), kwargs


def resilient_class(native: type) -> type:
    """The provider class with ResilientCalls in front (one per provider class)."""
    if native not in _classes:
        from pydantic import PrivateAttr

        namespace: dict[str, Any] = {
            "__module__": __name__,
            "__annotations__": {"_mb_control": Any, "_mb_model_id": str, "_mb_fallbacks": Any, "_mb_built": Any, "_mb_role": Any, "_mb_serves": Any},
            "_mb_role": PrivateAttr(default=None),  # "memory" for the memory's own model; None for an agent's
            "_mb_control": PrivateAttr(default=None),
            "_mb_model_id": PrivateAttr(default=""),
            "_mb_fallbacks": PrivateAttr(default_factory=list),
            "_mb_built": PrivateAttr(default_factory=dict),
            "_mb_serves": PrivateAttr(default=None),
        }
        _classes[native] = type(f"Resilient{native.__name__}", (ResilientCalls, native), namespace)
    return _classes[native]
