"""The wrapper every tool from outside the sandbox runs in: the run's stop, tools.yaml's timeout and output limit."""

from __future__ import annotations

import threading
from typing import Any

from crewai.tools import BaseTool
from pydantic import PrivateAttr

from mamabear.config.toolset import ToolsConfig


class Limited(BaseTool):
    """A tool as the agent sees it (its name, description and arguments), its calls bounded by tools.yaml's limits.
    At module level: CrewAI's checkpoints name an agent's tool classes, and a restore imports them."""

    _inner: Any = PrivateAttr(default=None)
    _config: Any = PrivateAttr(default=None)
    _guard: Any = PrivateAttr(default=None)

    def _run(self, **kwargs: Any) -> str:
        if self._inner is None:  # restored from a checkpoint: the run gives its agents fresh tools
            return "the tool is not connected; it is given again when the run resumes."
        stop = self._guard.stopping() if self._guard is not None else None
        if stop is not None:  # no tool starts once the run is asked to stop
            return f"not run: the run {stop.reason}."
        return call_within(lambda: self._inner.run(**kwargs), self._config, self.name)


class ToolTimeout(Exception):
    """A tool call ran past tools.yaml's timeout_s and was abandoned (it may still finish, unseen)."""


def limited(tool: Any, config: ToolsConfig, guard: Any = None) -> Any:
    """The wrapped tool keeps what CrewAI reads of the inner one: its arguments, its answer rule, its cache and usage limits."""
    wrapped = Limited(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        result_as_answer=tool.result_as_answer,
        cache_function=tool.cache_function,
        max_usage_count=tool.max_usage_count,
    )
    wrapped._inner, wrapped._config, wrapped._guard = tool, config, guard
    return wrapped


def call_within(call: Any, config: ToolsConfig, name: str) -> str:
    """The call's output as text, cut at ``output_chars``. A call past ``timeout_s`` is left to finish unseen and raises
    ToolTimeout; the tool's own failure is raised as it was. CrewAI then tells the agent, and the run records a failed call."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = call()
        except Exception as exc:  # noqa: BLE001 - raised again in the caller's thread, below
            result["error"] = exc

    worker = threading.Thread(target=work, name=f"tool {name}", daemon=True)
    worker.start()
    worker.join(config.timeout_s)
    if worker.is_alive():
        raise ToolTimeout(f"the tool {name} did not finish within {config.timeout_s:g}s and was abandoned; try something else")
    if "error" in result:
        raise result["error"]
    text = str(result.get("out", ""))
    if len(text) > config.output_chars:
        cut = len(text) - config.output_chars
        text = text[: config.output_chars] + f"\n[cut: {cut:,} more characters; ask for less, or for a part]"
    return text
