"""Converting a task's answer to its ``output_json`` model through the agent's own (guarded, recorded) LLM.

CrewAI's ``Converter.to_json`` hands a model that supports function calling to ``InternalInstructor``, which makes a
client of its own from the LLM's model, URL and key and calls the provider directly: no guard, retries, cache,
recording or store (a crew.py with three output_json tasks: 1 of 6 calls unrecorded). ``to_pydantic`` already asks
``llm.call(response_model=...)``; this converter answers ``to_json`` the same way. It is set through the task's public
``converter_cls`` (a task that names a converter of its own keeps it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from crewai.utilities.converter import Converter


class GuardedConverter(Converter):
    def to_json(self, current_attempt: int = 1) -> Any:
        if not self.llm.supports_function_calling():
            return super().to_json(current_attempt)  # CrewAI's own path already calls llm.call
        converted = self.to_pydantic(current_attempt)
        return converted.model_dump_json() if hasattr(converted, "model_dump_json") else converted

    async def ato_json(self, current_attempt: int = 1) -> Any:
        return await asyncio.to_thread(self.to_json, current_attempt)


def guarded_conversions(task: Any) -> None:
    """The task's conversions go through its agent's LLM (unless it names a converter of its own)."""
    if task.converter_cls in (None, Converter):
        task.converter_cls = GuardedConverter
