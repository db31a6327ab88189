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


def limited(tool: Any, config: ToolsConfig, guard: Any = None) -> Any:
    wrapped = Limited(name=tool.name, description=tool.description, args_schema=tool.args_schema, result_as_answer=tool.result_as_answer)
    wrapped._inner, wrapped._config, wrapped._guard = tool, config, guard
    return wrapped


def call_within(call: Any, config: ToolsConfig, name: str) -> str:
    """The call's output as text, cut at ``output_chars``; a call past ``timeout_s`` is left to finish unseen."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["out"] = call()
        except Exception as exc:  # noqa: BLE001 - the agent reads what went wrong, as CrewAI would tell it
            result["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=work, name=f"tool {name}", daemon=True)
    worker.start()
    worker.join(config.timeout_s)
    if worker.is_alive():
        return f"the tool {name} did not finish within {config.timeout_s:g}s and was abandoned; try something else."
    if "error" in result:
        return f"the tool {name} failed: {result['error']}"
    text = str(result.get("out", ""))
    if len(text) > config.output_chars:
        cut = len(text) - config.output_chars
        text = text[: config.output_chars] + f"\n[cut: {cut:,} more characters; ask for less, or for a part]"
    return text
