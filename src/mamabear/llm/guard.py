"""Stops a run between two steps: its time limit, its budget, a signal or a cancel request.

Every model call passes ``Guard.check()`` first (the resilient LLM calls it before each
attempt), so no call starts once the run is out of time or money. Spending is added
synchronously after each call, not from the event bus, so the check is never behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from crewai.hooks.dispatch import HookAborted

from mamabear.config.durations import fmt_seconds
from mamabear.config.limits import Limits
from mamabear.errors import EXIT_BUDGET, EXIT_INTERRUPTED, EXIT_TIME_LIMIT
from mamabear.status import Status

EXIT_CODES = {
    Status.TIME_LIMIT: EXIT_TIME_LIMIT,
    Status.BUDGET_EXHAUSTED: EXIT_BUDGET,
    Status.INTERRUPTED: EXIT_INTERRUPTED,
    Status.CANCELLED: EXIT_INTERRUPTED,
}
CANCEL_POLL_S = 2.0


class RunStopped(HookAborted):
    """A deliberate stop. A HookAborted, so CrewAI passes it straight up instead of retrying the task."""

    def __init__(self, status: Status, reason: str, exit_code: int | None = None) -> None:
        super().__init__(reason, source="mamabear")
        self.status = status
        self.exit_code = EXIT_CODES[status] if exit_code is None else exit_code


class TryStopped(HookAborted):
    """The step in hand ends now, the run goes on: a mission item's try that loops or has used its tool calls. A
    HookAborted, so CrewAI passes it straight up (no retry of the task); the step that asked for it catches it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, source="mamabear")


class Guard:
    def __init__(self, limits: Limits, spent_usd: float = 0.0, spent_tokens: int = 0, cancel_requested: Callable[[], bool] | None = None) -> None:
        self.limits = limits
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.deadline: float | None = None
        self._cancel_requested = cancel_requested
        self._next_poll = 0.0
        self._stop: RunStopped | None = None
        self.try_rule: Callable[[], str | None] | None = None  # why the step in hand must end, asked before each call
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def start_clock(self, started_at: float | None = None) -> None:
        """The time limit counts from ``started_at`` (a ``time.time()``: the command's start, as the reported time does)."""
        if self.limits.max_duration_s is not None:
            already = max(0.0, time.time() - started_at) if started_at is not None else 0.0
            self.deadline = time.monotonic() - already + self.limits.max_duration_s

    @contextmanager
    def held(self) -> Iterator[None]:
        """The time limit stands still while the run waits on a person (a plan's review); budgets and cancels still hold."""
        deadline, started = self.deadline, time.monotonic()
        self.deadline = None
        try:
            yield
        finally:
            if deadline is not None:
                self.deadline = deadline + (time.monotonic() - started)

    def spent_is(self, usd: float, tokens: int) -> None:
        """The run's spend as the store has it: what other processes of the run (a mission's steps on other
        workers) have spent counts here too."""
        with self._lock:
            self.spent_usd, self.spent_tokens = max(self.spent_usd, usd), max(self.spent_tokens, tokens)

    def add(self, usd: float, tokens: int) -> None:
        with self._lock:
            self.spent_usd += usd
            self.spent_tokens += tokens

    def request_stop(self, status: Status, reason: str, exit_code: int | None = None) -> None:
        if self._stop is None:
            self._stop = RunStopped(status, reason, exit_code)
        self._wake.set()

    @property
    def stop(self) -> RunStopped | None:
        return self._stop

    def check(self) -> None:
        """Raise RunStopped if the run must not start another model call, TryStopped if the step in hand must end."""
        stop = self.stopping()
        if stop is not None:
            raise stop
        why = self.try_rule() if self.try_rule is not None else None
        if why is not None:
            raise TryStopped(why)

    def stopping(self) -> RunStopped | None:
        """The stop the run is under, if it must not start another step (a model call, a tool)."""
        if self._stop is None:
            self._stop = self._why_stop()
        return self._stop

    def _why_stop(self) -> RunStopped | None:
        limits = self.limits
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return RunStopped(Status.TIME_LIMIT, f"reached its time limit of {fmt_seconds(limits.max_duration_s or 0)}")
        if limits.budget_usd is not None and self.spent_usd >= limits.budget_usd:
            return RunStopped(Status.BUDGET_EXHAUSTED, f"spent ${self.spent_usd:.4f} of its ${limits.budget_usd:g} budget")
        if limits.budget_tokens is not None and self.spent_tokens >= limits.budget_tokens:
            return RunStopped(Status.BUDGET_EXHAUSTED, f"used {self.spent_tokens:,} of its {limits.budget_tokens:,} token budget")
        if self._cancel_requested is not None and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + CANCEL_POLL_S
            if self._cancel_requested():
                return RunStopped(Status.CANCELLED, "was cancelled")
        return None

    def wait(self, seconds: float) -> None:
        """Sleep for a backoff, but wake for a stop request and never sleep past the deadline."""
        self.sleep(seconds)
        self.check()

    def sleep(self, seconds: float) -> None:
        """Sleep at most ``seconds``, until the deadline or until woken (a stop request, ``wake``)."""
        if self.deadline is not None:
            seconds = min(seconds, max(0.0, self.deadline - time.monotonic()))
        self._wake.wait(seconds)

    def wake(self) -> None:
        """End every sleep now and from now on (the run is over)."""
        self._wake.set()
