"""What a model call returned, as JSON for the response cache, and back.

A call returns text, a structured-output object (the caller's response model), or the
provider SDK's tool-call objects, which the agent executes itself. Anything else (for
example a tool's result, when the provider ran the tool inside the call) is not cached.
Tool-call classes are rebuilt only from the provider SDKs' own modules, so a shared
cache cannot make mamabear import arbitrary code.
"""

from __future__ import annotations

import importlib
from typing import Any

SDK_MODULES = ("openai.", "anthropic.", "google.genai.", "crewai.")


def encode(result: Any, response_model: type | None) -> dict[str, Any] | None:
    from pydantic import BaseModel

    if isinstance(result, str):
        return {"type": "text", "text": result}
    if response_model is not None and isinstance(result, response_model) and isinstance(result, BaseModel):
        return {"type": "structured", "data": result.model_dump(mode="json")}
    if isinstance(result, list) and result and all(isinstance(item, BaseModel) for item in result):
        items = [{"class": f"{type(item).__module__}:{type(item).__qualname__}", "data": item.model_dump(mode="json")} for item in result]
        if all(item["class"].startswith(SDK_MODULES) for item in items):
            return {"type": "models", "items": items}
    return None


def decode(entry: dict[str, Any], response_model: Any) -> Any:
    """The cached result, or None when it cannot be rebuilt here (then the model is asked again)."""
    from pydantic import BaseModel, ValidationError

    kind = entry.get("type")
    try:
        if kind == "text" and isinstance(entry.get("text"), str):
            return entry["text"]
        if kind == "structured" and response_model is not None:
            return response_model.model_validate(entry["data"])
        if kind == "models":
            rebuilt = []
            for item in entry["items"]:
                module, _, qualname = str(item["class"]).partition(":")
                if not any(module == m.rstrip(".") or module.startswith(m) for m in SDK_MODULES):
                    return None
                cls: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    cls = getattr(cls, part)
                if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
                    return None
                rebuilt.append(cls.model_validate(item["data"]))
            return rebuilt
    except (ImportError, AttributeError, KeyError, TypeError, ValidationError):
        return None
    return None
