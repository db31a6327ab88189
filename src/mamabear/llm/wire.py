"""What goes over the wire to a model server, and what comes back: requests every real server accepts.

- ``normalised``: OpenAI accepts an assistant message whose ``content`` is null beside its ``tool_calls``, and CrewAI
  sends one after every tool call; llama-cpp-python's server refuses it (HTTP 500, upstream #1805), as do other
  servers with strict request models. An empty string means the same to every server.
- ``refusal``: a request the server refused as invalid (a 4xx, or a 5xx whose body is a request-validation report, as
  llama-cpp-python sends) is not a transient fault: asking again gets the same answer. It is said in one sentence.
- Structured output by what the route supports: a server that refuses ``response_format: json_schema`` (llama-cpp-
  python takes only ``text`` and ``json_object``) is asked with the schema in the prompt instead, and the answer read
  leniently (code fences, prose around it, trailing commas).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

VALIDATION_MARKERS = ("Input should be", "Field required", "validation error", "Extra inputs are not permitted", "invalid_request_error")
STRUCTURED_MARKERS = ("response_format", "json_schema", "'text' or 'json_object'", "structured output")
CONTEXT_MARKERS = ("context length", "context_length", "context window", "exceeds the available context", "maximum context")


def normalised(messages: Any) -> Any:
    """``messages`` with every null ``content`` made "" (the same list when none is)."""
    if not isinstance(messages, list) or not any(isinstance(m, dict) and "content" in m and m["content"] is None for m in messages):
        return messages
    return [{**m, "content": ""} if isinstance(m, dict) and "content" in m and m["content"] is None else m for m in messages]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK's error carries, however it names it."""
    for value in (getattr(exc, "status_code", None), getattr(getattr(exc, "response", None), "status_code", None), getattr(exc, "code", None)):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def chain(exc: BaseException) -> list[BaseException]:
    """An error and those it was raised from or during (at most ten)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


REPORT_ENTRY = re.compile(r"'type': '(\w+)', 'loc': \(([^)]*)\),\s*'msg': (['\"])(.*?)\3")


def _validation_report(text: str) -> str | None:
    """The problem a pydantic report in a server's error text names: "messages.1.content: Input should be a valid
    string". A message is checked against each message model of a union (system, user, assistant, tool, function), so
    the report lists a wrong role for every other model (llama-cpp-python: 7 errors for one null content); the model
    whose role matched holds the real problem."""
    entries = []
    text = text.replace("\\'", "'").replace('\\"', '"')  # the report inside an SDK's repr of the error body
    for kind, loc_text, _quote, msg in REPORT_ENTRY.findall(text):
        try:
            loc = ast.literal_eval(f"({loc_text},)")
        except (ValueError, SyntaxError):
            loc = (loc_text,)
        entries.append((kind, tuple(loc), msg))
    if not entries:
        return None
    wrong_role = {loc[:-1] for kind, loc, _ in entries if kind == "literal_error" and loc[-1:] == ("role",)}
    real = [e for e in entries if not any(e[1][: len(w)] == w for w in wrong_role)] or entries
    _kind, loc, msg = real[0]
    parts = [str(p) for p in loc if p != "body" and not (isinstance(p, str) and (p.startswith("ChatCompletionRequest") or "typed-dict" in p))]
    return f"{'.'.join(parts)}: {msg}"


def refusal(exc: BaseException) -> str | None:
    """One sentence when the server refused the request itself as invalid; None for any other fault."""
    for item in chain(exc):
        status = status_of(item)
        if status is None:
            continue
        text = str(item)
        invalid = status in (400, 422) or (status >= 500 and any(marker in text for marker in VALIDATION_MARKERS))
        if not invalid:
            return None
        detail = _validation_report(text) or " ".join(text.split())[:200]
        return f"the model server refused the request as invalid (HTTP {status}: {detail})"
    return None


def overflowed(exc: BaseException) -> bool:
    """Whether the server said the prompt does not fit the model's context (not a rate limit, which is waited out)."""
    return any(status_of(item) != 429 and any(marker in str(item).lower() for marker in CONTEXT_MARKERS) for item in chain(exc))


def structured_refused(exc: BaseException) -> bool:
    """Whether the server refused the request's structured-output format (not the request as a whole)."""
    return refusal(exc) is not None and any(marker in str(item) for item in chain(exc) for marker in STRUCTURED_MARKERS)


SCHEMA_NOTE = "Answer with one JSON object and nothing else (no prose, no code fence). It must match this JSON schema:\n{schema}"


def with_schema(messages: Any, response_model: Any) -> Any:
    """The request's messages asking for ``response_model`` in words, for a route that takes no ``json_schema``."""
    note = SCHEMA_NOTE.format(schema=json.dumps(response_model.model_json_schema(), ensure_ascii=False))
    if isinstance(messages, str):
        return f"{messages}\n\n{note}"
    if not isinstance(messages, list):
        return messages
    return [*messages, {"role": "user", "content": note}]


def read_structured(answer: Any, response_model: Any) -> Any:
    """The model's answer as ``response_model``: JSON read leniently (code fences, prose around it, trailing commas)."""
    if isinstance(answer, response_model):
        return answer
    text = answer if isinstance(answer, str) else json.dumps(answer, default=str)
    data = first_object(text)
    return response_model.model_validate(data if data is not None else {})


def first_object(text: str) -> Any:
    """The first JSON object in a model's answer, read leniently (json-repair: a code fence, prose before or after
    it, a trailing comma, a missing brace); None when the answer holds none."""
    import json_repair

    if "{" not in text:
        return None
    data = json_repair.loads(text[text.find("{") :])
    if isinstance(data, list):  # the object, then something json_repair read as more of a list
        data = next((d for d in data if isinstance(d, dict)), None)
    return data if isinstance(data, dict) else None
