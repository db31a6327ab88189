"""A stop holds whatever the run is blocked on: signals, the time limit and a cancel are watched off the main thread.

CrewAI runs a task's model calls and tools in the main thread (or workers it waits for).
One can block for minutes: a model call that does not answer, a tool stuck on a pipe, a
memory store on a full disk. Python runs a signal handler only once the main thread is
back in Python code, and a process-wide signal can land on any thread, leaving the main
thread asleep; the guard is only consulted between steps. So:

- ``Signals`` reads SIGINT/SIGTERM from the interpreter's wakeup fd in a thread of its own.
  The first asks the run to stop (and unwinds the main thread when it can); the second
  exits at once (checkpoints are renamed into place whole, so none is left torn).
- ``Watchdog`` asks the run to stop when its time limit passes or a cancel is flagged in
  the store (from another machine), without waiting for the next model call.
- Once a stop is asked, the run has ``STOP_GRACE_S`` to end by itself; then it is settled
  from outside the main thread and the process exits, at most ``EXIT_CAP_S`` later
  whatever recording the stop is stuck on (a run not recorded as stopped is one whose
  process is gone: the next command records it interrupted, and it resumes).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mamabear.errors import EXIT_INTERRUPTED
from mamabear.llm.guard import CANCEL_POLL_S, Guard
from mamabear.status import Status

STOP_GRACE_S = 2.0  # a stopped run's own unwinding gets this long before it is settled from outside
EXIT_CAP_S = 10.0  # and the process exits at most this long after that, recorded or not
STOPPED_DRAIN_S = 3.0  # memories still being saved when a stopped run is settled from outside

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """First SIGINT/SIGTERM: ask the run to stop and unwind it (KeyboardInterrupt). Second: exit at once."""

    def __init__(self, guard: Guard, on_stop: Callable[[], None]) -> None:
        self.guard = guard
        self.on_stop = on_stop
        self.armed = True  # while the crew runs, the first signal unwinds the main thread; afterwards it is only noted
        self.received = 0
        self._unwound = False

    def __call__(self, signum: int, _frame: Any) -> None:
        """The Python-level handler (main thread, whenever it gets there): unwind the crew once. Counting is the watcher's."""
        self._ask_stop(signum)
        if self.armed and not self._unwound:
            self._unwound = True
            raise KeyboardInterrupt

    def _ask_stop(self, signum: int) -> None:
        self.guard.request_stop(Status.INTERRUPTED, f"was interrupted ({signal.Signals(signum).name})")

    def _received_one(self, signum: int) -> None:
        """Every signal, whatever thread it landed on: the first stops the run, the second exits at once."""
        self.received += 1
        if self.received > 1:
            os._exit(EXIT_INTERRUPTED)
        self._ask_stop(signum)
        self.on_stop()

    def _watch(self, fd: int) -> None:
        try:
            while data := os.read(fd, 64):  # empty once the run is over and the write end is closed
                for signum in data:
                    if signum in _SIGNALS:
                        self._received_one(signum)
        except OSError:
            pass
        finally:
            os.close(fd)

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        previous = {s: signal.signal(s, self) for s in _SIGNALS}
        threading.Thread(target=self._watch, args=(read_fd,), name="mamabear-signals", daemon=True).start()
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(write_fd)  # the watcher reads EOF and ends; it closes nothing else


class Watchdog:
    """Asks for the stop the guard would ask for at the next step (time limit, cancel flag) as soon as it is due."""

    def __init__(self, guard: Guard, on_stop: Callable[[], None]) -> None:
        self.guard = guard
        self.on_stop = on_stop
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="mamabear-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def end(self) -> None:
        self._ended.set()
        self.guard.wake()

    def _watch(self) -> None:
        while not self._ended.is_set():
            try:
                stop = self.guard.stopping()
            except Exception:  # noqa: BLE001 - a store that cannot say whether a cancel is flagged: ask again later
                stop = None
            if stop is not None:
                if not self._ended.is_set():
                    self.on_stop()
                return
            self.guard.sleep(CANCEL_POLL_S)


HEARTBEAT_S = 2.0  # how often a running attempt says, in the store, that it is alive (store/liveness.py reads it)


class Heartbeat:
    """Beats for a running attempt, from the moment it owns the run (before the crew is built, which can be slow),
    in a thread of its own. A beat the store refuses means the attempt no longer owns the run (it was taken as lost
    and handed on): ``on_lost`` then stops it, and its end leaves the run to its new owner."""

    def __init__(self, beat: Callable[[], bool], on_lost: Callable[[], None]) -> None:
        self.beat, self.on_lost = beat, on_lost
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mamabear-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def end(self) -> None:
        self._ended.set()

    def _run(self) -> None:
        while not self._ended.wait(HEARTBEAT_S):
            try:
                owned = self.beat()
            except Exception:  # noqa: BLE001 - a store that cannot be written now: beat again later
                continue
            if not owned and not self._ended.is_set():
                self.on_lost()
                return
