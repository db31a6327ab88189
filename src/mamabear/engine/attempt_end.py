"""How an attempt ends, recorded exactly once: from the attempt's own path, or from outside it after a stop.

CrewAI runs each model call in a worker thread while the main thread waits in asyncio, so
Ctrl-C cannot unwind a call in flight; after a short grace the abandon timer records the stop
(the checkpoint of the last completed task is already on disk) and exits the process.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from mamabear.errors import EXIT_INTERRUPTED, StorageError
from mamabear.observe import RunState
from mamabear.status import FINAL, STOPPED, Status


@dataclass
class RunResult:
    run_id: str
    status: Status
    output: str | None
    error: str | None
    state: RunState
    exit_code: int


MEMORY_DRAIN_S = 10.0  # the longest a run's end waits for memories still being saved (a stopped run's calls stop at once)


class AttemptEnd:
    """Records how an attempt ended, exactly once: from the normal path, or from the abandon timer.

    CrewAI runs each model call in a worker thread while the main thread waits in asyncio,
    so Ctrl-C cannot unwind a call in flight; after a short grace the timer records the
    stop (the checkpoint of the last completed task is already on disk) and exits.
    """

    def __init__(
        self, store: Any, tracker: Any, guard: Any, attempt: int, checkpoints: Any, link: Any = None, trace: Any = None, whole_run: bool = True
    ) -> None:
        """``whole_run``: False for an attempt that carried out one step for the attempt holding the run; its end
        settles that step's row, and leaves the run, its session and its checkpoints to their holder."""
        self.store, self.tracker, self.guard, self.attempt, self.checkpoints = store, tracker, guard, attempt, checkpoints
        self.link, self.trace, self.whole_run = link, trace, whole_run
        self.memory: Any = None  # the run's shared memory: what it is still saving is waited for, however the run ends
        self.watchdog: Any = None
        self._lock = threading.Lock()
        self._done = False
        self._abandoning = False

    def settle(self, status: Status, error: str | None, exit_code: int, output: str | None, drain_s: float = MEMORY_DRAIN_S) -> RunResult | None:
        with self._lock:
            if self._done:
                return None
            self._done = True
            if self.watchdog is not None:
                self.watchdog.end()
            tracker, state, run_id = self.tracker, self.tracker.state, self.tracker.state.run_id
            _drain(self.memory, drain_s)  # CrewAI saves memories on a background thread; the process exits hard
            tracker.detach()  # also waits for the last checkpoint write
            if self.link is not None and self.whole_run:
                self.link.close()  # bill the sandbox time; an unpooled cloud session is paused
            if self.guard.stop is not None:
                status, error, exit_code = self.guard.stop.status, self.guard.stop.reason, self.guard.stop.exit_code
                if status == Status.INTERRUPTED and self.store.cancel_requested(run_id):
                    status, error = Status.CANCELLED, "was cancelled"
            try:
                task = tracker.settle_running_task(status, error)
                if status == Status.FAILED and task is not None:
                    error = f"task {task.position} {task.task} failed: {error}"
                if status == Status.COMPLETED and self.whole_run:
                    status, error, exit_code = _as_recorded(self.store, state, status, error, exit_code)
                state.status, state.activity, state.finished_at = status, status, time.time()
                if self.whole_run:
                    self.store.finish_attempt(run_id, self.attempt, status, error, output)
            except StorageError as exc:  # not recorded: the next command finds its process gone and records it interrupted
                if exc.message not in (error or ""):
                    error = exc.message if error is None else f"{error}; {exc.message}"
                exit_code = exit_code or exc.exit_code
            if self.trace is not None:
                for problem in self.trace.finish(
                    status,
                    error,
                    {
                        "gen_ai.usage.input_tokens": state.tokens_in,
                        "gen_ai.usage.output_tokens": state.tokens_out,
                        "mamabear.cost_usd": round(state.cost_usd, 8),
                    },
                ):
                    tracker.event("trace_export_failed", f"warning: {problem}")
            if not self.whole_run:
                return RunResult(run_id, status, output, error, state, exit_code)
            if status == Status.COMPLETED:
                self.checkpoints.discard()  # a completed run is never resumed
            tracker.event("run_finished", f"{ending_line(run_id, status, error)} ({_summary(state)})", data={"status": status})
            assert status in FINAL
            return RunResult(run_id, status, output, error, state, exit_code)

    def abandon_after(self, seconds: float, on_abandon: Any) -> None:
        """Unless the run has ended ``seconds`` from now, settle it from here, render it and exit the process.

        Whatever fails or blocks here (the store, a memory save, the renderer), the process exits
        at most EXIT_CAP_S later: the main thread may be stuck in CrewAI or a tool.
        """
        with self._lock:
            if self._abandoning:
                return
            self._abandoning = True

        from mamabear.engine.stopping import EXIT_CAP_S, STOPPED_DRAIN_S

        def abandon() -> None:
            if self._done:
                return  # the run ended by itself meanwhile; its own path reports it
            stop = self.guard.stop
            cap = threading.Timer(EXIT_CAP_S, os._exit, (stop.exit_code if stop is not None else EXIT_INTERRUPTED,))
            cap.daemon = True
            cap.start()
            try:
                result = self.settle(Status.INTERRUPTED, "was interrupted", EXIT_INTERRUPTED, None, drain_s=STOPPED_DRAIN_S)
            except BaseException:  # noqa: BLE001
                os._exit(stop.exit_code if stop is not None else EXIT_INTERRUPTED)
            if result is None:
                return  # the main thread is settling it: its own path reports it (the cap still holds)
            try:
                if on_abandon is not None:
                    on_abandon(result)
            finally:
                os._exit(result.exit_code)

        timer = threading.Timer(seconds, abandon)
        timer.daemon = True
        timer.start()


def _drain(memory: Any, seconds: float) -> None:
    """Wait for the memory's pending saves, at most ``seconds`` (a save stuck in a model call must not hold the exit)."""
    if memory is None:
        return

    def drain() -> None:
        try:
            memory.drain_writes()
        except Exception:  # noqa: BLE001 - a failed save is the memory's own business (it logs it); the run's end goes on
            pass

    waiter = threading.Thread(target=drain, name="mamabear-memory-drain", daemon=True)
    waiter.start()
    waiter.join(seconds)


def ending_line(run_id: str, status: str, error: str | None) -> str:
    """How a run ended, as a sentence: "run X completed", "run X failed: task 2 ...", "run X was cancelled"."""
    if not error:
        return f"run {run_id} {status}"
    if status in STOPPED:  # the reason reads as a sentence of its own: "reached its time limit of 2m00s"
        return f"run {run_id} {error}"
    return f"run {run_id} {status}: {error}"


def _summary(state: RunState) -> str:
    from mamabear.config.durations import fmt_seconds
    from mamabear.config.money import fmt_usd

    calls = f"{state.llm_calls} model call" + ("" if state.llm_calls == 1 else "s")
    cost = fmt_usd(state.cost_usd, state.unpriced_calls)
    line = f"{fmt_seconds(state.seconds)}, {calls}, {state.tokens_in:,}+{state.tokens_out:,} tokens, {cost}"
    if state.cache_hits:
        line += f"; {state.cache_hits} answered from the cache, ${state.saved_usd:.4f} saved"
    return line


def _as_recorded(store: Any, state: Any, status: Status, error: str | None, exit_code: int) -> tuple[Status, str | None, int]:
    """A run is completed only when the store's row of every task it completed says so; otherwise it ends interrupted
    and a resume carries out what is not recorded (the store is the truth, not this process's memory)."""
    rows = {row.position: row.status for row in store.tasks(state.run_id)}
    unrecorded = [t.position for t in state.tasks if t.status == Status.COMPLETED and rows.get(t.position) != Status.COMPLETED]
    if not unrecorded:
        return status, error, exit_code
    listed = ", ".join(map(str, unrecorded))
    return Status.INTERRUPTED, f"task {listed} is not recorded completed in the run store; a resume carries it out again", EXIT_INTERRUPTED
