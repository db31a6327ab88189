"""Whether a try's tool calls are going round in circles: judged on what happened (the call and what it gave back),
after OpenHands' StuckDetector. Pure, no CrewAI.

A try's calls, in order, are a loop when the last ones are:

- the same call with the same result, ``repeats`` times in a row (a command run again that changed nothing);
- the same call failing, ``repeats`` times in a row, whatever its error text (errors carry times and ids);
- two calls taking turns, A B A B ..., each giving back what it gave before, for ``2 * repeats`` calls.

The same call with a new result is progress, not a loop: a test run again after an edit, a poll whose answer moved.
A loop whose arguments vary every time is not caught here; the try's tool-call budget bounds it (``over_budget``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    tool: str
    arguments: str
    observed: str  # what it gave back, whitespace aside
    failed: bool = False

    @property
    def action(self) -> tuple[str, str]:
        return self.tool, " ".join(self.arguments.split())

    def shown(self) -> str:
        return f"{self.tool} {' '.join(self.arguments.split())[:120]}".strip()


def observed(output: str | None, error: str | None) -> str:
    """What a tool call gave back, as the loop rules compare it (whitespace aside)."""
    return " ".join(f"{output or ''} {error or ''}".split())


def loop(calls: Sequence[Call], repeats: int) -> str | None:
    """The loop the last calls make, as a sentence to feed back; None when they make none."""
    if repeats < 1 or len(calls) < repeats:
        return None
    last = calls[-repeats:]
    if all(c == last[0] for c in last):
        return f"the same tool call was made {repeats} times in a row, with the same result: {last[0].shown()}"
    if all(c.failed and c.action == last[0].action for c in last):
        return f"the same tool call failed {repeats} times in a row: {last[0].shown()}"
    turns = calls[-2 * repeats :]
    if len(turns) == 2 * repeats and turns[0] != turns[1] and all(c == turns[i % 2] for i, c in enumerate(turns)):
        return f"two tool calls took turns {repeats} times each, with the same results: {turns[0].shown()} and {turns[1].shown()}"
    return None


def over_budget(calls: Sequence[Call], budget: int) -> str | None:
    """A sentence when the try has made its budget of tool calls without finishing; None before."""
    if budget and len(calls) >= budget:
        return f"the try made {len(calls)} tool calls, its limit, without finishing (tool_calls_per_try in config/missions.yaml)"
    return None
