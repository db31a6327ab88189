"""One model-driven step of a mission: one task for one specialist, as a one-task crew.

A step runs in the attempt that holds the mission, or, on a worker pool, in an attempt of its own on another worker
(``SentStep``, started by `mamabear step RUN POSITION`): it reads what to do from the ``mission_step_sent`` event of
its position, writes its row, calls and tool calls as any step does, and ends with its row settled.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mamabear.engine.context import RunContext
from mamabear.errors import UsageError

if TYPE_CHECKING:
    from mamabear.config.catalog import Catalog
    from mamabear.store.database import Store

SENT = "mission_step_sent"  # the event that holds a step sent to the pool: its agent, description, expected output
STOPPED = "mission_try_stopped"  # a step whose try was stopped, and why


@dataclass(frozen=True)
class Answer:
    """What a step gave: its answer, or why its try was stopped (a loop, its tool-call budget, CrewAI's own guard);
    ``unfit``: why an answer asked for in a schema does not fit it (``text`` is then what the model said, if known)."""

    text: str
    stopped: str | None = None
    unfit: str | None = None


def run_step(
    ctx: RunContext,
    catalog: Catalog,
    position: int,
    agent_id: str,
    description: str,
    expected: str,
    output: type[BaseModel] | None = None,
    tools: bool = True,
    max_iter: int | None = None,
) -> Answer:
    """Carry out the step at ``position`` (its row exists) for ``agent_id``. ``output``: the answer's schema, asked for
    with the provider's structured output; ``tools=False``: a step that only thinks (planning, judging), without tools
    or the memory (CrewAI would give it memory tools). An item's step recalls, never saves: only its checked result is
    remembered, by the mission. A try that CrewAI's own
    repeated-call guard stops, or the mission's (``Guard.try_rule``), or whose conversation outgrew the model's context,
    ends with ``stopped`` saying why: a failed try of the item, not a failed mission."""
    from crewai import Crew, Process, Task
    from crewai.tools.tool_failure import ToolExecutionFailedError

    from mamabear.engine.build import Built, make_agent
    from mamabear.llm.guard import TryStopped
    from mamabear.llm.wire import overflowed

    parts = ctx.parts
    planned = next(a for a in ctx.plan.agents if a.id == agent_id)
    step = ctx.state.task(position)
    assert step is not None  # its row was added before it was run
    overrides: dict[str, Any] = {"max_iter": max_iter} if max_iter else {}
    if output is not None:  # an answer that does not fit is the mission's to tell back (once), not CrewAI's to retry
        overrides["max_retry_limit"] = 0
    agent = make_agent(catalog, parts, planned, tools=tools, **overrides)
    task = Task(name=step.task, description=description, expected_output=expected, agent=agent, output_pydantic=output)
    memory = parts.memory if tools else None  # CrewAI gives a crew's agents memory tools: a thinking step has none
    crew = Crew(agents=[agent], tasks=[task], process=Process.sequential, verbose=False, memory=memory or False)
    tracker = ctx.tracker
    tracker.attach(Built(crew=crew, positions={str(task.id): position}, agents={str(agent.id): planned}))
    stopped = unfit = None
    try:
        with _recall_only(memory):
            result: Any = crew.kickoff()
        text = str(result.raw or "")
    except (TryStopped, ToolExecutionFailedError) as exc:
        stopped, text = str(exc.args[0] if exc.args else exc), ""
    except ValidationError as exc:  # the provider's own parse of a structured answer
        if output is None:
            raise
        unfit, text = _unfit(exc)
    except Exception as exc:
        if not overflowed(exc):
            raise
        stopped, text = "the try's conversation outgrew the model's context window", ""
    finally:
        tracker.detach()
    tracker.complete_task(position, text if stopped is None else f"(the try was stopped: {stopped})")
    if stopped is not None:
        tracker.event(STOPPED, f"step {position} ({step.task}) was stopped: {stopped}", position, data={"reason": stopped})
    return Answer(text, stopped, unfit)


def _unfit(exc: ValidationError) -> tuple[str, str]:
    """Why a structured answer does not fit its schema, in a sentence, and the answer's text when the error holds it
    (an answer that is not bare JSON: prose around it, a trailing comma, which a lenient read may still take)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    text = first["input"] if first["type"] == "json_invalid" and isinstance(first.get("input"), str) else ""
    given = first.get("input")
    what = f"{where} {given!r}" if not text and isinstance(given, (str, int, float)) and len(str(given)) <= 80 else where
    return f"the answer does not fit its schema ({what + ': ' if what else ''}{first['msg']})", text


@contextmanager
def _recall_only(memory: Any) -> Iterator[None]:
    """The memory read-only while a step runs (CrewAI would save what each try said, checked or not)."""
    if memory is None or memory.read_only:
        yield
        return
    memory.read_only = True
    try:
        yield
    finally:
        memory.read_only = False


class SentStep:
    """The work of an attempt that carries out one step a mission sent to the pool."""

    def __init__(self, store: Store, run_id: str, position: int, catalog: Catalog) -> None:
        sent = [e for e in store.events(run_id, kinds=(SENT,)) if e["task_position"] == position]
        if not sent:
            raise UsageError(f"run {run_id} sent no step {position} to the pool.")
        self.spec, self.position, self.catalog = sent[-1]["data"] or {}, position, catalog

    def __str__(self) -> str:
        return f"step {self.position}"

    def kickoff(self, ctx: RunContext) -> str:
        from mamabear.config.redact import dereferenced

        ctx.guard.check()
        spec = self.spec
        description = dereferenced(spec["description"], ctx.parts.settings.env, f"step {self.position}")  # its secrets, as the holder had them
        return run_step(ctx, self.catalog, self.position, spec["agent"], description, spec["expected"], max_iter=spec.get("max_iter")).text
