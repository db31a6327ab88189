"""A run's connection to its sandbox session: opened at the first tool call, reattached on resume.

The link decides which session the run works in (``--session``, the run's own from an
earlier attempt, a pooled one of its kind, or a new one), records it on the run, pauses
an idle cloud session while the agents think, and releases the session when the run ends.
A sandbox error that no agent can work around (a refused key, an unreachable API)
stops the run through its guard, so it ends with one sentence and stays resumable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from mamabear.engine.plan import SandboxPlan
from mamabear.errors import EXIT_USAGE
from mamabear.sandbox.backend import SandboxError
from mamabear.sandbox.sessions import Context, Sessions
from mamabear.status import Status

IDLE_CHECK_S = 30.0


class LinkEvents(Protocol):
    """What the link needs from its run: the task in hand, and a place to say what happened to the session."""

    current: int | None  # the position of the task in hand

    def note(self, kind: str, message: str, data: dict | None = None) -> None: ...


class SessionLink:
    def __init__(self, sessions: Sessions, plan: SandboxPlan, run_id: str, attempt: int, events: LinkEvents, guard: Any = None, borrowed: bool = False) -> None:
        """``borrowed``: the session is another process's (the attempt holding the run, for whom this one carries out
        a step): it is used, never paused or released from here."""
        self.sessions, self.plan, self.run_id, self.attempt, self.borrowed = sessions, plan, run_id, attempt, borrowed
        self.events = events
        self.guard = guard
        self.session_id: str | None = None
        self.last_shot: Any = None  # the session's latest screenshot (computer_use): positions are given in it
        self._busy = 0  # tool calls in progress: an instance is never paused under one
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._watch: threading.Thread | None = None

    def context(self, agent: str | None) -> Context:
        return Context(self.run_id, self.attempt, self.events.current, agent)

    def session(self, agent: str | None = None) -> dict:
        """The run's session, ready for a command: opened, resumed or replaced as needed."""
        with self._lock:
            try:
                if self.session_id is None:
                    session = self._open(self.context(agent))
                    self.session_id = session["id"]
                    if not self.borrowed:
                        self.sessions.ledger.link_run(self.run_id, session["id"])
                        self._start_watch()
                    return session
                return self.sessions.ledger.session(self.session_id)  # a paused one is resumed by the next action
            except SandboxError as exc:
                if self.guard is not None:
                    self.guard.request_stop(Status.FAILED, exc.message, EXIT_USAGE)
                raise

    @contextmanager
    def in_use(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _open(self, context: Context) -> dict:
        sessions, plan = self.sessions, self.plan
        if plan.session:
            session = sessions.resume(sessions.get(plan.session), context)
            self.events.note("sandbox_session", f"working in sandbox session {session['id']} ({session['backend']}, {session['kind']})")
            return session
        if plan.reuse:
            for pooled in sessions.ledger.pooled(plan.kind, plan.backend):
                try:
                    session = sessions.resume(pooled, context)
                except SandboxError:
                    continue
                self.events.note("sandbox_session", f"reusing pooled sandbox session {session['id']} ({session['backend']}, {session['kind']})")
                return session
        session = sessions.start(plan.backend, plan.kind, pooled=plan.reuse, context=context, network=plan.network)
        self.events.note("sandbox_session", f"started sandbox session {session['id']} ({session['backend']}, {session['kind']})")
        caveat = sessions.caveat(session)
        if caveat:
            self.events.note("sandbox_caveat", f"warning: {caveat}")
        return session

    def save(self) -> None:
        """After a task: keep a copy of a cloud workspace, to restore if the instance is lost."""
        with self._lock:
            if self.session_id is not None:
                self.sessions.save(self.sessions.ledger.session(self.session_id))

    def close(self) -> None:
        """The run is over: stop a local command still running (a stopped run does not wait for it), bill the session."""
        self._closed.set()
        if self.plan.backend == "local":
            self.sessions.backend("local").interrupt()
        with self._lock:
            if self.session_id is not None:
                try:
                    self.sessions.release(self.sessions.ledger.session(self.session_id))
                except SandboxError:
                    pass  # the run's result matters more; `sandbox list` shows the session as it is

    def _start_watch(self) -> None:
        if self.plan.backend == "local" or self._watch is not None:
            return
        self._watch = threading.Thread(target=self._pause_when_idle, name="mamabear-sandbox-idle", daemon=True)
        self._watch.start()

    def _pause_when_idle(self) -> None:
        idle_s = self.sessions.config.idle_pause_minutes * 60
        while not self._closed.wait(min(IDLE_CHECK_S, max(idle_s / 4, 0.05))):
            with self._lock:
                session = self.sessions.ledger.session(self.session_id)  # type: ignore[arg-type]  # the watch starts only once a session exists
                if self._busy or session["status"] != "running" or time.time() - session["last_used_at"] <= idle_s:
                    continue
                try:
                    self.sessions.pause(session)
                    self.events.note("sandbox_paused", f"paused idle sandbox session {session['id']}; the next command resumes it")
                except SandboxError:
                    pass
