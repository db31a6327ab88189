"""A CrewAI Flow carried out as one run: each method a row of the run (a step), each task of a crew a method starts a
row after it, every agent of those crews on a routed, guarded, recorded LLM.

The store is the flow's checkpoint: as each method ends, the ``flow_method_done`` event keeps its output and the
flow's state (a secret as ``${NAME}``). A resumed flow is given them (CrewAI's own restore of completed methods): the
methods that finished are not run again, their listeners carry on, and the method cut short starts over.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from mamabear.config.refs import project_path
from mamabear.flow.project import FLOW_AGENT, FlowProject, flow_class, flow_methods
from mamabear.status import Status

if TYPE_CHECKING:
    from mamabear.engine.context import RunContext

DONE = "flow_method_done"  # a method that finished: its name, output and the flow's state after it


class FlowWork:
    """What an attempt runs for a flow project (``Work``)."""

    def __init__(self, project: FlowProject, inputs: dict[str, Any], resume: bool = False) -> None:
        self.project, self.inputs, self.resume = project, inputs, resume
        self.ctx: RunContext | None = None
        self.rows: dict[str, int] = {}  # method name -> its row while it runs
        self.names: dict[str, str] = {}  # method name -> its row's name ("review (2)": its second run)
        self.counts: dict[str, int] = {}  # how often each method has started (a cyclic flow's methods run again)
        self.flow: Any = None
        self.built: Any = None  # engine.build.Built of the flow itself: its agents run alone, no crew
        self.replaying: dict[str, Any] = {}  # routers that finished before a resume: their recorded outcome
        self.kickoffs: dict[str, int] = {}  # method row name -> crews it has started (a loop, kickoff_for_each)
        self.answered: dict[str, Any] = {}  # task rows completed before this attempt: the answers a resume gives back
        self.failure: BaseException | None = None  # what a step hook raised (CrewAI swallows it); the run stops on it
        self.lock = threading.RLock()  # one crew adopted at a time: the tracker records one crew's rows

    def __str__(self) -> str:
        return f"the CrewAI flow {self.project.name}"

    def kickoff(self, ctx: RunContext) -> str | None:
        from mamabear.compat.crewai import agents_adopted, crews_adopted, flow_steps, replay_method, restore_flow

        self.ctx = ctx
        cls = flow_class(self.project)
        self.flow = flow = cls()
        done = ctx.store.events(ctx.run_id, kinds=(DONE,)) if self.resume else []
        if done:
            from mamabear.config.redact import dereferenced

            saved = [
                json.loads(dereferenced(json.dumps(e["data"]), ctx.parts.settings.env, f"the state after flow method {e['data']['method']}", in_json=True))
                for e in done
            ]
            counts: dict[str, int] = {}
            for entry in saved:
                counts[entry["method"]] = counts.get(entry["method"], 0) + 1
            self.counts = dict(counts)
            # CrewAI's restore takes no branch after a router that finished (it is skipped with no outcome): a router
            # is given its recorded outcome again instead, at once and without a row, and its branch is taken.
            routers = {m.name for m in flow_methods(cls) if m.kind == "router"}
            self.replaying = {e["method"]: e["output"] for e in saved if e["method"] in routers}
            for name, outcome in self.replaying.items():
                replay_method(flow, name, outcome)
            completed = [e["method"] for e in saved if e["method"] not in routers]
            restore_flow(flow, completed, [{"method": e["method"], "output": e["output"]} for e in saved], counts, saved[-1]["state"])
            ctx.tracker.event("flow_resumed", f"flow resumed after {len(saved)} finished method(s): {', '.join(e['method'] for e in saved)}")
        ctx.guard.check()
        self.answered = {t.task: t for t in ctx.state.tasks if t.status == Status.COMPLETED}
        from mamabear.engine.build import Built

        self.built = Built(crew=_NO_CREW, positions={}, agents={})  # the flow's own: what its methods do outside crews
        ctx.tracker.attach(self.built)
        steps = flow_steps(flow, self._hooked(self._started), self._hooked(self._finished))
        try:
            with project_path([self.project.root.parent, *self.project.roots]), steps, crews_adopted(self._adopt), agents_adopted(self._adopt_agent):
                result = flow.kickoff() if done else flow.kickoff(inputs=self.inputs or None)
        finally:
            ctx.tracker.detach()
        self._raise_failure()
        return _text(result)

    def _hooked(self, hook: Any) -> Any:
        """A step hook whose exception is kept: CrewAI swallows what its hooks raise, and the flow would run on with its
        methods unrecorded (a resume paying for them again); the next crew, agent or the flow's end raises it."""

        def call(*args: Any) -> None:
            try:
                hook(*args)
            except BaseException as exc:  # noqa: BLE001 - kept and raised where CrewAI lets it through
                self.failure = self.failure or exc

        return call

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    # ------------------------------------------------------------ methods

    def _row(self, name: str, agent: str | None, model: str | None) -> int:
        """The row for a step: the one an earlier attempt left unfinished under this name, or a new one."""
        from mamabear.engine.attempt import add_step

        assert self.ctx is not None
        for task in self.ctx.state.tasks:
            if task.task == name and task.status != Status.COMPLETED:
                return task.position
        return add_step(self.ctx, name, agent, model).position

    def _started(self, method: str) -> None:
        assert self.ctx is not None
        self.ctx.guard.check()
        if method in self.replaying:
            return
        self.counts[method] = self.counts.get(method, 0) + 1
        name = method if self.counts[method] == 1 else f"{method} ({self.counts[method]})"
        position = self._row(name, None, None)
        self.rows[method], self.names[method] = position, name
        self.ctx.tracker.start_task(position, holds=True)

    def _finished(self, method: str, result: Any) -> None:
        assert self.ctx is not None
        if self.replaying.pop(method, None) is not None:
            return
        position = self.rows.pop(method, None)
        if position is None:
            return
        tracker = self.ctx.tracker
        state = self.flow.state
        referenced = tracker.redact.referenced_data  # a secret as ${NAME}: a resume gives the flow the value
        data = referenced({"method": method, "output": _jsonable(result), "state": _jsonable(state)})
        tracker.event(DONE, f"flow method {method} finished", position, data=data)
        tracker.complete_task(position, _text(result))

    # ------------------------------------------------------------ crews

    @contextmanager
    def _adopt(self, crew: Any) -> Iterator[None]:
        """A crew a method starts, run as one of the run's (``_adopting``). Crews in parallel branches run one after
        another, since the tracker records one crew's rows at a time; a crew started inside another (same thread) runs."""
        with self.lock, self._adopting(crew):
            yield

    @contextmanager
    def _adopting(self, crew: Any) -> Iterator[None]:
        """A crew a method starts: each agent on the run's route for the flow's crews, each task a row after the method's."""
        from mamabear.compat.crewai import flow_method, made_manager
        from mamabear.engine.build import Built, guard_side_calls

        assert self.ctx is not None
        self._raise_failure()
        ctx = self.ctx
        method = flow_method() or "flow"
        row = self.names.get(method, method)
        self.kickoffs[row] = self.kickoffs.get(row, 0) + 1
        if self.kickoffs[row] > 1:  # the method's second crew (or the same crew again): rows of their own
            row = f"{row} (crew {self.kickoffs[row]})"
        members = [*crew.agents, *([made_manager(crew)] if str(getattr(crew.process, "value", crew.process)) == "hierarchical" else [])]
        agents = {str(agent.id): self._routed(agent) for agent in members}
        if crew.manager_agent is not None and str(crew.manager_agent.id) in agents:
            crew.manager_llm = crew.manager_agent.llm
        positions = {}
        done = self.answered
        filled = False
        for number, task in enumerate(crew.tasks, start=1):
            name = f"{row}/{task.name or f'task {number}'}"
            stored = done[name].output if name in done else None
            if stored is not None and task.output is None and not filled_gap(crew, number):
                # done before this method was cut short: its answer is given again, not asked for again
                task.output = _output(task, stored, ctx.parts.settings.env)
                positions[str(task.id)], filled = done[name].position, True
                continue
            who = agents.get(str(task.agent.id)) if task.agent is not None else None
            positions[str(task.id)] = self._row(name, who.id if who else None, self._base().route.model)
        if filled:
            from mamabear.compat.crewai import resume_from_first_unfinished

            resume_from_first_unfinished(crew)
        guard_side_calls(crew)
        before, current = ctx.tracker.built, ctx.tracker.current
        ctx.tracker.use(Built(crew=crew, positions=positions, agents=agents))
        try:
            yield
        finally:
            ctx.tracker.use(before or self.built)
            ctx.tracker.current = current if before is not self.built else self.rows.get(method, current)  # back where it was started

    @contextmanager
    def _adopt_agent(self, agent: Any) -> Iterator[None]:
        """An agent a method runs alone (``Agent.kickoff``): on the run's route, its calls placed in the method's row."""
        self._raise_failure()
        self.built.agents[str(agent.id)] = self._routed(agent)
        yield

    def _routed(self, agent: Any) -> Any:
        """The planned agent a flow's agent runs as (the plan's route for the flow's agents, under its own role), its
        LLM set to mamabear's."""
        from mamabear.engine.project import slug

        assert self.ctx is not None
        planned = replace(self._base(), id=slug(str(agent.role)), role=str(agent.role).strip())
        agent.llm = self.ctx.parts.llm(planned)
        return planned

    def _base(self) -> Any:
        """The plan's agent for the flow's agents: their route."""
        assert self.ctx is not None
        return next(a for a in self.ctx.plan.agents if a.id == FLOW_AGENT)


class _NoCrew:
    tasks: list[Any] = []


_NO_CREW = _NoCrew()


def filled_gap(crew: Any, number: int) -> bool:
    """Whether a task before task ``number`` has no output: CrewAI skips only the tasks before the first without one."""
    return any(t.output is None for t in crew.tasks[: number - 1])


def _output(task: Any, stored: str, env: Any) -> Any:
    from crewai.tasks.task_output import TaskOutput

    from mamabear.config.redact import dereferenced

    raw = dereferenced(stored, env, f"the output of task {task.name}")  # its secrets put back
    agent = task.agent.role if task.agent is not None else ""
    return TaskOutput(description=task.description, raw=raw, name=task.name, expected_output=task.expected_output, agent=agent)


def _text(result: Any) -> str | None:
    if result is None:
        return None
    raw = getattr(result, "raw", None)
    if isinstance(raw, str):
        return raw
    if hasattr(result, "model_dump_json"):
        return str(result.model_dump_json())
    return result if isinstance(result, str) else json.dumps(_jsonable(result))


def _jsonable(value: Any) -> Any:
    """A value as JSON can hold it: a crew's output as its text, a model as its fields, anything else as its text."""
    if isinstance(value, Enum):  # a router's outcome: its value is what its listeners listen for
        return _jsonable(value.value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump(mode="json"))
    if isinstance(getattr(value, "raw", None), str):
        return value.raw
    return str(value)
