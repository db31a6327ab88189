"""A scripted OpenAI-compatible chat server on 127.0.0.1 for offline tests and benches.

It speaks the real wire protocol (``POST /v1/chat/completions``, JSON or SSE
streaming, ``GET /v1/models``), so the code under test uses its real HTTP clients.
Each request is recorded. Replies come from rules matched against the request
text, in order; a rule can reply with text, with tool calls, with an HTTP error
(and headers such as ``Retry-After``), after a delay, or by dropping the
connection. With no matching rule the server answers with text that quotes the
start of the last user message, so every task gets a distinct, predictable output.

``strict = True`` validates each request as llama-cpp-python's server does (its pydantic request models): an
assistant message's ``content`` must be a string (null beside ``tool_calls`` is refused, upstream #1805), a tool
message needs its ``tool_call_id``, and the refusal is an HTTP 500 whose body is the validation report.
A rule with ``schema=True`` answers the least that satisfies the request's json_schema (a model that knows no
prompt of ours, only the schema). ``json_schema = False`` refuses ``response_format: {"type": "json_schema"}`` the same way (llama-cpp-python takes only
``text`` and ``json_object``). ``served`` lists the model ids ``GET /v1/models`` answers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import JsonHandler, LoopbackServer


@dataclass
class Rule:
    contains: str | None = None  # substring of the request's message text; None matches all
    model: str | None = None  # the request's model; None matches all
    task: str | None = None  # substring of the task line ("Current Task: ...") of the last user message
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name": ..., "arguments": {...}}]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    times: int | None = None  # None: unlimited
    cached_tokens: int = 0  # input tokens the reply says the provider's prompt cache served
    schema: bool = False  # answer with the least that satisfies the request's json_schema response format, and no more
    then: Callable[[], Any] | None = None  # called, in a thread of its own, once the reply is sent (say, to go down)
    used: int = 0

    def matches(self, text: str, model: str | None, task: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        return (self.contains is None or self.contains in text) and (self.model is None or self.model == model) and (self.task is None or self.task in task)


def request_text(body: dict[str, Any]) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(str(content or ""))
    return "\n".join(parts)


def task_line(body: dict[str, Any]) -> str:
    """The first line of the last user message: CrewAI puts "Current Task: <description>" there. (A message of
    screenshots that follows a tool's answer is not the task's.)"""
    users = [m for m in body.get("messages", []) if m.get("role") == "user" and isinstance(m.get("content"), str)]
    content = users[-1].get("content", "") if users else ""
    content = content if isinstance(content, str) else request_text({"messages": [users[-1]]})
    return content.strip().split("\n", 1)[0]


def default_answer(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    last = str(users[-1].get("content", "")) if users else ""
    gist = " ".join(last.split())[:80]
    return f"Result for: {gist}"


class FakeLLM(LoopbackServer):
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.requests: list[dict[str, Any]] = []
        self.strict = False
        self.json_schema = True
        self.served = ["fake-model"]
        self._lock = threading.Lock()
        super().__init__(_handler_for(self))

    @property
    def url(self) -> str:
        return f"{self.origin}/v1"

    def add(self, **kwargs: Any) -> Rule:
        rule = Rule(**kwargs)
        with self._lock:
            self.rules.append(rule)
        return rule

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.strict, self.json_schema, self.served = False, True, ["fake-model"]

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _pick(self, text: str, model: str | None, task: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(text, model, task):
                    rule.used += 1
                    return rule
        return None


SCHEMA_TEXT = "hello from the schema server"


def schema_answer(body: dict[str, Any]) -> Any:
    """The least a model may answer for the request's ``response_format`` json_schema: every property given, each
    string the same sentence (an enum's first value), each array one element, each number 1, each boolean true. What the
    schema does not forbid it does: an item's id and its dependency are the same string."""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object", "properties": {}}
    defs = schema.get("$defs", {})

    def instance(node: dict[str, Any]) -> Any:
        if "$ref" in node:
            return instance(defs[node["$ref"].rsplit("/", 1)[-1]])
        for key in ("anyOf", "oneOf", "allOf"):
            if key in node:
                return instance(next((n for n in node[key] if n.get("type") != "null"), node[key][0]))
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return node["enum"][0]
        kind = node.get("type", "object")
        if kind == "object":
            return {name: instance(sub) for name, sub in node.get("properties", {}).items()}
        if kind == "array":
            return [instance(node.get("items", {}))]
        return {"string": SCHEMA_TEXT, "integer": 1, "number": 1, "boolean": True}.get(kind)

    return instance(schema)


MESSAGE_MODELS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool", "function": "Function"}


def validation_errors(body: dict[str, Any], json_schema: bool) -> list[dict[str, Any]]:
    """What llama-cpp-python's request models refuse in ``body``, as pydantic reports it: a message is checked against
    each model of its union, so a bad one is reported once per model (a wrong role for each other one), as its
    server does (7 errors for an assistant message whose content is null)."""
    errors = []
    for i, message in enumerate(body.get("messages") or []):
        role, content = message.get("role"), message.get("content")
        problems = []
        if role in ("system", "assistant", "tool") and not isinstance(content, str):
            problems.append({"type": "string_type", "field": "content", "msg": "Input should be a valid string", "input": content})
        if role == "tool" and not message.get("tool_call_id"):
            problems.append({"type": "missing", "field": "tool_call_id", "msg": "Field required", "input": message})
        if not problems:
            continue
        for each, model in MESSAGE_MODELS.items():
            where = ("body", "messages", i, f"ChatCompletionRequest{model}Message")
            if each != role:
                errors.append({"type": "literal_error", "loc": (*where, "role"), "msg": f"Input should be '{each}'", "input": role})
            else:
                errors += [{"type": p["type"], "loc": (*where, p["field"]), "msg": p["msg"], "input": p["input"]} for p in problems]
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and not json_schema and response_format.get("type") not in ("text", "json_object"):
        loc = ("body", "response_format", "type")
        errors.append({"type": "literal_error", "loc": loc, "msg": "Input should be 'text' or 'json_object'", "input": response_format.get("type")})
    return errors


def validation_report(errors: list[dict[str, Any]]) -> str:
    """The error message llama-cpp-python's server sends with its HTTP 500."""
    head = f"{len(errors)} validation error{'s' if len(errors) != 1 else ''}:"
    lines = "\n".join(f"  {e}" for e in errors)
    return f'{head}\n{lines}\n\n  File "llama_cpp/server/app.py", line 376, in create_chat_completion\n    POST /v1/chat/completions'


def embedding(text: str, size: int = 16) -> list[float]:
    """A deterministic unit vector for a text (its words hashed into buckets): like texts land near each other."""
    import hashlib
    import math

    vector = [0.0] * size
    for word in text.lower().split():
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % size] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    prompt = max(1, len(request_text(body)) // 4)
    completion = max(1, len(reply) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(JsonHandler):
        def do_GET(self) -> None:
            with fake._lock:
                fake.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "me"} for m in fake.served]})
            else:
                self._send_json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            text = request_text(body)
            self.record = {
                "path": self.path,
                "model": body.get("model"),
                "body": body,
                "text": text,
                "task": task_line(body),
                "headers": dict(self.headers),
                "time": time.time(),
                "status": None,
                "usage": None,
            }
            with fake._lock:
                fake.requests.append(self.record)
            if self.path.rstrip("/").endswith("/embeddings"):  # for a knowledge source's embedder: a vector per text
                texts = body.get("input") if isinstance(body.get("input"), list) else [body.get("input")]
                self.record["status"] = 200
                data = [{"object": "embedding", "index": i, "embedding": embedding(str(t))} for i, t in enumerate(texts)]
                self._send_json(200, {"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})
                return
            errors = validation_errors(body, fake.json_schema) if fake.strict or not fake.json_schema else []
            if errors:
                self.record["status"] = 500
                self._send_json(500, {"error": {"message": validation_report(errors), "type": "internal_server_error", "param": None, "code": None}})
                return
            rule = fake._pick(text, body.get("model"), self.record["task"])
            if rule and rule.delay:
                time.sleep(rule.delay)
            if rule and rule.drop:
                self.record["status"] = "dropped"
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if rule and rule.status != 200:
                self.record["status"] = rule.status
                self._send_json(
                    rule.status,
                    {"error": {"message": rule.text or f"scripted error {rule.status}", "type": "server_error", "code": rule.status}},
                    rule.headers,
                )
                return
            self._reply(body, rule)
            if rule and rule.then:
                threading.Thread(target=rule.then, daemon=True).start()

        def _reply(self, body: dict[str, Any], rule: Rule | None) -> None:
            message: dict[str, Any] = {"role": "assistant"}
            finish = "stop"
            if rule and rule.tool_calls:
                message["content"] = None
                message["tool_calls"] = [
                    {
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
                    }
                    for c in rule.tool_calls
                ]
                finish = "tool_calls"
                reply_text = json.dumps(message["tool_calls"])
            else:
                if rule and rule.schema:
                    reply_text = json.dumps(schema_answer(body))
                else:
                    reply_text = rule.text if rule and rule.text is not None else default_answer(body)
                message["content"] = reply_text
            usage = _usage(body, reply_text)
            if rule and rule.cached_tokens:
                usage["prompt_tokens_details"] = {"cached_tokens": min(rule.cached_tokens, usage["prompt_tokens"])}
            self.record["status"], self.record["usage"] = 200, usage
            created = int(time.time())
            rid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
            model = body.get("model") or "fake-model"
            if body.get("stream"):
                self._stream(rid, created, model, message, finish, usage)
                return
            self._send_json(
                200,
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                },
            )

        def _stream(self, rid: str, created: int, model: str, message: dict, finish: str, usage: dict) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            delta = {k: v for k, v in message.items() if v is not None}
            if "tool_calls" in delta:
                delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(delta["tool_calls"])]
            chunks = [
                {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
                {"choices": [], "usage": usage},
            ]
            for chunk in chunks:
                payload = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, **chunk}
                self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


if __name__ == "__main__":  # python tests/fakellm.py: a server to point `--base-url` at by hand
    server = FakeLLM().start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
