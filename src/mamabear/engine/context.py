"""What a run's work is given, typed: the one seam between the engine and what it drives.

The engine drives a ``Work`` (a mission's course, a mission's step sent to a worker) by calling its ``kickoff`` with
the attempt's ``RunContext``: the run's store, guard, tracker, sandbox link, agent factory and call control. The
work reaches the run's parts through the context only, never through the attempt's own attributes, and the engine
knows nothing of what the work is (it never imports the mission layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mamabear.engine.build import AgentParts
    from mamabear.engine.link import SessionLink
    from mamabear.engine.plan import Plan
    from mamabear.engine.tracker import Tracker
    from mamabear.llm.guard import Guard
    from mamabear.llm.resilience import CallControl
    from mamabear.observe import RunState
    from mamabear.store.database import Store


@dataclass(frozen=True)
class RunContext:
    run_id: str
    attempt: int  # this attempt's number
    plan: Plan
    state: RunState  # the run's live state (its tasks, their usage)
    store: Store
    guard: Guard  # budget, time limit and cancel: checked before each model call, and by the work between steps
    tracker: Tracker  # records the run's events, calls and tasks, and tells the observers
    parts: AgentParts  # the agent factory: routed, guarded LLMs and sandbox tools for a planned agent
    control: CallControl  # what every model call of the run shares: guard, retries, cache, tape, quotas
    link: SessionLink | None  # the run's sandbox session, opened at the first tool call; None without a sandbox


class Work(Protocol):
    """What an attempt runs instead of its plan's crew."""

    def kickoff(self, ctx: RunContext) -> str | None:
        """Carry the run out (or on) and give its output; stop when ``ctx.guard`` says so."""
        ...
