"""CrewAI's internals mamabear relies on (crewai is pinned in pyproject.toml)."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from mamabear.compat.versions import moved

# What a checkpoint keeps of each event: what CrewAI's restore reads (types, ids, task and
# agent, emission order) and not the payloads (whole agents, tasks and prompts).
_EVENT_SKELETON = (
    "type",
    "timestamp",
    "source_fingerprint",
    "source_type",
    "task_id",
    "task_name",
    "agent_id",
    "agent_role",
    "event_id",
    "parent_event_id",
    "previous_event_id",
    "triggered_by_event_id",
    "started_event_id",
    "emission_sequence",
)


def _skeleton(event: Any) -> dict[str, Any]:
    fields = {name: getattr(event, name, None) for name in _EVENT_SKELETON}
    if fields["timestamp"] is not None:
        fields["timestamp"] = fields["timestamp"].isoformat()
    return fields


def apply_checkpoint_patches() -> None:
    """Two changes to what CrewAI puts in a checkpoint (see engine/checkpoints.py for why); idempotent.

    - Its event record is written as skeletons (``EventRecord.model_dump`` in JSON mode), copied
      under the record's own read lock (``EventRecord._lock``).
    - ``flow`` entities are not registered with the checkpointed state (``CrewAIEventsBus.register_entity``).
    """
    from crewai.events.event_bus import CrewAIEventsBus
    from crewai.state.event_record import EventRecord

    dump = EventRecord.model_dump
    if not getattr(dump, "mamabear_skeleton", False):

        def skeleton_dump(self: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("mode") != "json":
                return dump(self, *args, **kwargs)
            with self._lock.r_locked():  # the run goes on adding events while a checkpoint is taken
                return {
                    "nodes": {key: {"event": _skeleton(node.event), "edges": {k: list(v) for k, v in node.edges.items()}} for key, node in self.nodes.items()}
                }

        skeleton_dump.mamabear_skeleton = True  # type: ignore[attr-defined]  # a marker: applied once
        EventRecord.model_dump = skeleton_dump  # type: ignore[method-assign]  # the patch itself

    register = CrewAIEventsBus.register_entity
    if not getattr(register, "mamabear_no_flows", False):

        def register_entity(self: Any, entity: Any) -> None:
            if getattr(entity, "entity_type", None) != "flow":
                register(self, entity)

        register_entity.mamabear_no_flows = True  # type: ignore[attr-defined]  # a marker: applied once
        CrewAIEventsBus.register_entity = register_entity  # type: ignore[method-assign]  # the patch itself


def apply_mcp_warning_patch() -> None:
    """An MCP server an agent names by URL (``mcps=["https://..."]``) that cannot be reached is told as CrewAI's own
    ``MCPConnectionFailedEvent``, which the run records as a warning; idempotent. CrewAI leaves that server's tools
    out and says so only through the agent's logger, and only when the agent is verbose
    (``MCPToolResolver._get_mcp_tool_schemas``)."""
    from crewai.mcp.tool_resolver import MCPToolResolver

    schemas = MCPToolResolver._get_mcp_tool_schemas
    if getattr(schemas, "mamabear_warns", False):
        return

    def warned(self: Any, server_params: dict[str, Any]) -> Any:
        from crewai.events import crewai_event_bus
        from crewai.events.types.mcp_events import MCPConnectionFailedEvent

        logger, failures = self._logger, []

        class Heard:
            def log(self, level: str, message: str, *args: Any, **kwargs: Any) -> None:
                if level == "warning" and message.startswith("Failed to get MCP tool schemas"):
                    failures.append(message.split(": ", 1)[-1])
                logger.log(level, message, *args, **kwargs)

        self._logger = Heard()
        try:
            found = schemas(self, server_params)
        finally:
            self._logger = logger
        if failures:
            url = str(server_params.get("url", ""))
            role = getattr(getattr(self, "_agent", None) or getattr(self, "agent", None), "role", None)
            crewai_event_bus.emit(self, MCPConnectionFailedEvent(server_name=url, server_url=url, error=failures[0], agent_role=role))
        return found

    warned.mamabear_warns = True  # type: ignore[attr-defined]
    warned.__wrapped__ = schemas  # type: ignore[attr-defined]  # CrewAI's own, for the check in problems()
    MCPToolResolver._get_mcp_tool_schemas = warned  # type: ignore[method-assign]


def apply_conversion_patch() -> None:
    """A task's answer converted to its ``output_json`` model goes through the agent's own LLM; idempotent.

    ``Converter.to_json`` hands an LLM that supports function calling to ``InternalInstructor``, which makes a client
    of its own from the LLM's model, URL and key and calls the provider directly: no guard, retries, cache, recording
    or store (a crew.py with three output_json tasks: 1 of 6 calls unrecorded). ``Converter.to_pydantic`` already asks
    ``llm.call(response_model=...)``; ``to_json`` is made to answer through it. (A task's public ``converter_cls`` is no
    way in: with one set, CrewAI converts every answer with a model call, even one that is valid JSON already.)
    """
    from crewai.hooks.dispatch import HookAborted
    from crewai.utilities.converter import Converter, ConverterError

    to_json = Converter.to_json
    if getattr(to_json, "mamabear_guarded", False):
        return

    def guarded_to_json(self: Any, current_attempt: int = 1) -> Any:
        if not self.llm.supports_function_calling():
            return to_json(self, current_attempt)  # CrewAI's own path calls llm.call already
        try:
            return self.to_pydantic(current_attempt).model_dump_json()
        except HookAborted:  # a run that was stopped (its budget, its time, a cancel) stops here too
            raise
        except Exception as exc:  # noqa: BLE001 - as CrewAI's to_json: the error is returned, the task decides
            return ConverterError(f"Failed to convert text into JSON, error: {exc}.")

    async def guarded_ato_json(self: Any, current_attempt: int = 1) -> Any:
        import asyncio

        return await asyncio.to_thread(guarded_to_json, self, current_attempt)

    guarded_to_json.mamabear_guarded = True  # type: ignore[attr-defined]  # a marker: applied once
    Converter.to_json = guarded_to_json  # type: ignore[method-assign]  # the patch itself
    Converter.ato_json = guarded_ato_json  # type: ignore[method-assign]


def checkpoint_path(location: str, branch: str, parent_id: str | None) -> Path:
    """Where CrewAI's JSON provider puts a checkpoint (its private ``_build_path``)."""
    from crewai.state.provider.json_provider import _build_path

    return Path(_build_path(location, branch, parent_id))


@contextmanager
def own_rate_limit_retry_off() -> Iterator[None]:
    """CrewAI's own rate-limit retry stays out of the way of mamabear's (its ``_active_llm_rate_limit_retry``)."""
    from crewai.llms.retry import _active_llm_rate_limit_retry

    token = _active_llm_rate_limit_retry.set(True)
    try:
        yield
    finally:
        _active_llm_rate_limit_retry.reset(token)


def token_usage(llm: Any) -> dict[str, int]:
    """An LLM's running token counts (``BaseLLM._token_usage``): prompt_tokens, completion_tokens, ..."""
    return dict(llm._token_usage)


def resolve_route(model: str, kwargs: dict[str, Any]) -> Any:
    """Which native provider class CrewAI would use for a model (``LLM._resolve_route``)."""
    from crewai import LLM

    return LLM._resolve_route(model, kwargs)


@lru_cache(maxsize=1)
def _call_parameters() -> tuple[str, ...]:
    from crewai.llms.base_llm import BaseLLM

    return tuple(name for name in inspect.signature(BaseLLM.call).parameters if name != "self")


def call_arguments(args: tuple, kwargs: dict) -> dict[str, Any]:
    """``BaseLLM.call``'s arguments by name, however they were passed (bound by its signature)."""
    return {**dict(zip(_call_parameters(), args, strict=False)), **kwargs}


def resume_from_first_unfinished(crew: Any) -> None:
    """Make a crew built afresh start at its first task without an output, as a restored crew does.

    CrewAI skips the tasks before that one only for a crew with ``checkpoint_kickoff_event_id`` set.
    """
    if crew.checkpoint_kickoff_event_id is None:
        crew.checkpoint_kickoff_event_id = f"mamabear-resume-{secrets.token_hex(8)}"


def pending_saves(memory: Any) -> list[Any]:
    """The futures of the memory saves still running in CrewAI's save pool (``Memory._pending_saves``)."""
    with memory._pending_lock:
        return list(memory._pending_saves)


@contextmanager
def human_input_answers(answer: Any) -> Iterator[None]:
    """While the block runs, a task with ``human_input`` takes its feedback from ``answer(task_name)`` (the next
    answer, "" to accept) instead of ``input()`` at the terminal. CrewAI's provider keeps its loop (feedback, a new
    answer, until an empty one); only its private prompt is replaced."""
    from crewai.core.providers.human_input import SyncHumanInputProvider, reset_provider, set_provider

    class Answers(SyncHumanInputProvider):
        task_name = ""

        def handle_feedback(self, formatted_answer: Any, context: Any) -> Any:
            self.task_name = str(getattr(getattr(context, "task", None), "name", "") or "")
            return super().handle_feedback(formatted_answer, context)

        def _prompt_input(self, crew: Any) -> str:  # type: ignore[override]  # a static method in CrewAI
            return answer(self.task_name)

    token = set_provider(Answers())
    try:
        yield
    finally:
        reset_provider(token)


def llm_guardrails(task: Any) -> list[Any]:
    """A task's guardrails that ask a model (CrewAI's ``LLMGuardrail``, made from a guardrail's text with the LLM its
    agent had then), from its private ``_guardrail`` and ``_guardrails``."""
    from crewai.tasks.llm_guardrail import LLMGuardrail

    held = [task._guardrail, *(task._guardrails or [])]
    return [g for g in held if isinstance(g, LLMGuardrail)]


def made_manager(crew: Any) -> Any:
    """The manager agent of a hierarchical crew given only ``manager_llm``: CrewAI's own (its role, goal, backstory and
    delegation tools), made now by its private ``Crew._create_manager_agent`` rather than at kickoff, so that mamabear
    routes its model and records its calls as any agent's. A crew with a ``manager_agent`` keeps it."""
    if crew.manager_agent is None:
        crew._create_manager_agent()
    return crew.manager_agent


@contextmanager
def flow_steps(flow: Any, started: Any, finished: Any) -> Iterator[None]:
    """While the block runs, ``started(method)`` is called as each method of ``flow`` begins and ``finished(method,
    result)`` as it ends, in the flow's own thread and order: CrewAI's PRE_STEP and POST_STEP interception points,
    which it dispatches synchronously. CrewAI swallows a hook's exception (but HookAborted's): they must not raise."""
    from crewai.hooks.dispatch import InterceptionPoint, register, unregister

    def pre(ctx: Any) -> None:
        if getattr(ctx, "kind", None) == "flow_method" and getattr(ctx, "flow", None) is flow:
            started(str(ctx.step_name))

    def post(ctx: Any) -> None:
        if getattr(ctx, "kind", None) == "flow_method" and getattr(ctx, "flow", None) is flow:
            finished(str(ctx.step_name), ctx.output)

    register(InterceptionPoint.PRE_STEP, pre)
    register(InterceptionPoint.POST_STEP, post)
    try:
        yield
    finally:
        unregister(InterceptionPoint.PRE_STEP, pre)
        unregister(InterceptionPoint.POST_STEP, post)


@contextmanager
def _kickoffs_adopted(cls: Any, adopt: Any, threaded: tuple[str, ...] = (), awaited: tuple[str, ...] = ()) -> Iterator[None]:
    """While the block runs, each ``cls.kickoff`` runs inside ``adopt(instance)``; the class's own is put back after.

    ``threaded``: async kickoffs run instead as the adopted ``kickoff`` in a thread (as CrewAI's own ``kickoff_async``
    is), since what ``adopt`` records cannot be shared by crews interleaved on one event loop. ``awaited``: async
    kickoffs awaited inside ``adopt``."""
    import asyncio

    originals = {name: vars(cls)[name] for name in ("kickoff", *threaded, *awaited)}

    def kickoff(self: Any, *args: Any, **kwargs: Any) -> Any:
        with adopt(self):
            return originals["kickoff"](self, *args, **kwargs)

    async def in_thread(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(kickoff, self, *args, **kwargs)

    def awaiting(original: Any) -> Any:
        async def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with adopt(self):
                return await original(self, *args, **kwargs)

        return run

    cls.kickoff = kickoff
    for name in threaded:
        setattr(cls, name, in_thread)
    for name in awaited:
        setattr(cls, name, awaiting(originals[name]))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def crews_adopted(adopt: Any) -> Any:
    """While the block runs, each ``Crew.kickoff`` (a flow's method starting a crew) runs inside ``adopt(crew)``, a
    context manager that routes and records the crew before it runs. ``kickoff_async`` runs ``kickoff`` in a thread;
    ``akickoff`` (CrewAI's native async) is made to do the same."""
    from crewai import Crew

    return _kickoffs_adopted(Crew, adopt, threaded=("akickoff",))


def agents_adopted(adopt: Any) -> Any:
    """While the block runs, each ``Agent.kickoff`` (an agent a flow's method runs alone, outside any crew) runs inside
    ``adopt(agent)``, as ``crews_adopted`` does for crews; so does ``kickoff_async``, which ``kickoff`` returns inside
    an async flow method and ``akickoff`` calls."""
    from crewai import Agent

    return _kickoffs_adopted(Agent, adopt, awaited=("kickoff_async",))


def flow_method() -> str | None:
    """The flow method running in this thread (CrewAI sets it before it runs one), or None outside any."""
    from crewai.flow.flow_context import current_flow_method_name

    name = current_flow_method_name.get()
    return None if name == "unknown" else name


def feedback_method(method: Any) -> bool:
    """Whether a flow method is decorated with ``@human_feedback`` (the decorator marks the function it wraps)."""
    return hasattr(method, "__human_feedback_config__")


def restore_flow(flow: Any, completed: list[str], outputs: list[dict[str, Any]], counts: dict[str, int], state: dict[str, Any]) -> None:
    """Make a new flow carry on after its ``completed`` methods, as CrewAI's own checkpoint restore does: those are not
    run again, their listeners are, and its state is ``state`` (with its ``id``). Its public checkpoint fields, then
    its private ``_restore_from_checkpoint``."""
    flow.checkpoint_completed_methods = set(completed)
    flow.checkpoint_method_outputs = outputs
    flow.checkpoint_method_counts = counts
    flow.checkpoint_state = state
    flow._restore_from_checkpoint()


def replay_method(flow: Any, name: str, value: Any) -> None:
    """Make the flow's method ``name`` give ``value`` at once instead of running, the next time only (its private
    ``_methods`` table, which its runner calls by name): a cycle that comes back to it runs it."""
    original = flow._methods[name]

    def replayed(*_args: Any, **_kwargs: Any) -> Any:
        flow._methods[name] = original
        return value

    flow._methods[name] = replayed


def problems() -> list[str]:
    found: list[str] = []

    def need(ok: bool, what: str, why: str = "is gone or has changed") -> None:
        if not ok:
            found.append(moved("crewai", what, why))

    try:
        from crewai import LLM, Agent, Crew
        from crewai.core.providers.human_input import SyncHumanInputProvider
        from crewai.events.event_bus import CrewAIEventsBus
        from crewai.llms import retry
        from crewai.llms.base_llm import BaseLLM
        from crewai.memory.unified_memory import Memory
        from crewai.state.event_record import EventRecord
        from crewai.state.provider import json_provider
        from crewai.task import Task
        from crewai.tasks.llm_guardrail import LLMGuardrail
        from crewai.utilities.converter import Converter
    except ImportError as exc:
        return [moved("crewai", f"module {exc.name}", "cannot be imported")]
    need("_lock" in EventRecord.__private_attributes__ and "nodes" in EventRecord.model_fields, "EventRecord._lock and .nodes")
    need(callable(getattr(CrewAIEventsBus, "register_entity", None)), "CrewAIEventsBus.register_entity")
    from crewai.mcp.tool_resolver import MCPToolResolver

    resolver_source = inspect.getsource(inspect.unwrap(MCPToolResolver._get_mcp_tool_schemas))
    need(
        'self._logger.log(\n                "warning", f"Failed to get MCP tool schemas' in resolver_source,
        "MCPToolResolver._get_mcp_tool_schemas, which logs an unreachable server as a warning",
    )
    need(callable(getattr(json_provider, "_build_path", None)), "crewai.state.provider.json_provider._build_path")
    need(hasattr(getattr(retry, "_active_llm_rate_limit_retry", None), "set"), "crewai.llms.retry._active_llm_rate_limit_retry (a ContextVar)")
    need("_token_usage" in BaseLLM.__private_attributes__, "BaseLLM._token_usage")
    need(callable(getattr(LLM, "_resolve_route", None)), "LLM._resolve_route")
    params = _call_parameters()
    need(params[:1] == ("messages",) and {"tools", "available_functions", "response_model"} <= set(params), f"BaseLLM.call's parameters ({', '.join(params)})")
    need("checkpoint_kickoff_event_id" in Crew.model_fields, "Crew.checkpoint_kickoff_event_id")
    need(
        "asyncio.to_thread(self.kickoff" in inspect.getsource(Crew.kickoff_async) and "self.kickoff_async(" in inspect.getsource(Agent.akickoff),
        "Crew.kickoff_async (kickoff in a thread) and Agent.akickoff (kickoff_async)",
    )
    from crewai.flow import Flow, flow_context
    from crewai.hooks.dispatch import InterceptionPoint
    from crewai.hooks.dispatch import register as register_hook

    need(
        {"checkpoint_completed_methods", "checkpoint_method_outputs", "checkpoint_method_counts", "checkpoint_state"} <= set(Flow.model_fields)
        and callable(getattr(Flow, "_restore_from_checkpoint", None))
        and "_methods" in Flow.__private_attributes__,
        "Flow.checkpoint_* fields, Flow._restore_from_checkpoint and Flow._methods",
    )
    need(hasattr(flow_context, "current_flow_method_name"), "crewai.flow.flow_context.current_flow_method_name")
    from crewai.flow import human_feedback

    need(feedback_method(human_feedback(message="?")(lambda self: None)), "@human_feedback's __human_feedback_config__ mark")
    need(
        callable(register_hook) and hasattr(InterceptionPoint, "PRE_STEP") and hasattr(InterceptionPoint, "POST_STEP"),
        "crewai.hooks.dispatch.register and its PRE_STEP, POST_STEP points",
    )
    need(
        callable(getattr(Crew, "_create_manager_agent", None)) and "if self.manager_agent is not None" in inspect.getsource(Crew._create_manager_agent),
        "Crew._create_manager_agent, which keeps a manager_agent already set",
    )
    need({"_pending_saves", "_pending_lock"} <= set(Memory.__private_attributes__), "Memory._pending_saves and ._pending_lock")
    need(
        "_prompt_input" in vars(SyncHumanInputProvider) and "self._prompt_input(context.crew)" in inspect.getsource(SyncHumanInputProvider.handle_feedback),
        "SyncHumanInputProvider._prompt_input, called by its handle_feedback",
    )
    need({"_guardrail", "_guardrails"} <= set(Task.__private_attributes__), "Task._guardrail and ._guardrails")
    need("llm" in inspect.signature(LLMGuardrail.__init__).parameters, "LLMGuardrail(llm=...)")
    need(
        all(callable(getattr(Converter, n, None)) for n in ("to_json", "ato_json", "to_pydantic")) and "_create_instructor" in vars(Converter),
        "Converter.to_json, .ato_json, .to_pydantic (and its instructor path)",
    )
    return found
