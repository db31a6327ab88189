"""Is a model provider answering? One small request each (its models list), with a short timeout: for `doctor`.

An OpenAI-compatible --base-url server is asked more, as it is the user's own and costs nothing: whether it serves
the model ids the tiers route to it (llama.cpp answers any name, and a run would be recorded under a model it is not),
and, with two requests capped at a few tokens, whether tool calls and json_schema structured output come back. A run
asks a --base-url server for its models list once at its start (``unlisted``). A provider's own API is never asked for
more than its models list.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mamabear.config.models import Route
from mamabear.config.settings import Settings

TIMEOUT_S = 5.0
# Where each provider lists its models, and how it takes the key. An OpenAI-compatible --base-url is asked at {base}/models.
ENDPOINTS = {
    "openai": ("https://api.openai.com/v1/models", lambda key: {"Authorization": f"Bearer {key}"}, None),
    "anthropic": ("https://api.anthropic.com/v1/models", lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"}, None),
    "gemini": ("https://generativelanguage.googleapis.com/v1beta/models", lambda key: {}, "key"),
}


@dataclass(frozen=True)
class Probe:
    target: str  # the server, as the user knows it
    status: str  # ok | warn | fail, as doctor's checks
    detail: str
    served: tuple[str, ...] = ()  # the model ids its models list names


def _request(route: Route, settings: Settings) -> tuple[str, str, dict, dict] | Probe | None:
    """(target shown to the user, URL, headers, params); a Probe when it cannot be asked; None when there is no key to ask with."""
    if route.base_url:
        key = settings.api_key  # never a provider's own key: that goes to its provider only
        return route.base_url, route.base_url.rstrip("/") + "/models", {"Authorization": f"Bearer {key}"} if key else {}, {}
    endpoint = ENDPOINTS.get(route.provider)
    key = settings.env.get(route.key_env) if route.key_env else None
    if not key:
        return None
    if endpoint is None:
        return Probe(route.provider, "warn", f"{route.provider} is not checked from here; a run will tell")
    url, headers, param = endpoint
    return route.provider, url, headers(key), {param: key} if param else {}


def _ask(target: str, url: str, headers: dict, params: dict) -> Probe:
    import httpx

    started = time.monotonic()
    try:
        response = httpx.get(url, headers=headers, params=params, timeout=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - unreachable, refused, timed out, or a URL httpx cannot parse: one sentence each
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Probe(target, "fail", f"cannot reach {target} ({reason}); check --base-url, the server, or your network")
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    code = response.status_code
    if code in (400, 401, 403):  # Gemini answers a bad key with 400
        return Probe(target, "fail", f"{target} refused the request (HTTP {code}, {took}); check the API key's variable")
    if code >= 500:
        return Probe(target, "fail", f"{target} answered HTTP {code} ({took}); the server is failing")
    if not response.is_success:  # a server without a models list (404) still answered
        return Probe(target, "ok", f"{target} answered in {took} (HTTP {code} for its models list)")
    return Probe(target, "ok", f"{target} answered in {took}", _served(response))


def _served(response: Any) -> tuple[str, ...]:
    """The model ids a models list names (none when it is not one)."""
    try:
        data = response.json().get("data")
    except (ValueError, AttributeError):
        return ()
    return tuple(str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")) if isinstance(data, list) else ()


def not_listed(routes: list[Route], served: dict[str, tuple[str, ...]]) -> list[str]:
    """Sentences for the --base-url models their server's list (``served``, by server) does not name; none for a
    server that lists none."""
    found = []
    for base, listed in served.items():
        wanted = [m for m in dict.fromkeys(m for r in routes if r.base_url == base for m in r.chain) if m.removeprefix("openai/") not in listed]
        if listed and wanted:
            found.append(
                f"{base} lists {', '.join(listed[:5])}, not {', '.join(wanted)}; a server that answers any name (llama.cpp) "
                f"runs its own model under that name. Pass --model {listed[0]}."
            )
    return found


def unlisted(routes: list[Route], settings: Settings, timeout: float = 2.0) -> list[str]:
    """``not_listed`` for a run's start: each --base-url server asked for its models list once (``timeout`` at most)."""
    import httpx

    served = {}
    for base in dict.fromkeys(r.base_url for r in routes if r.base_url):
        request = _request(next(r for r in routes if r.base_url == base), settings)
        if isinstance(request, tuple):
            try:
                # A plain-http server (a local one) needs no TLS: without verify=False httpx still loads the CA
                # bundle for the client, 22-50 ms of every run's start against 2 ms.
                plain = base.startswith("http://")
                served[base] = _served(httpx.get(request[1], headers=request[2], timeout=timeout, verify=not plain))
            except httpx.HTTPError:
                continue  # unreachable: the run's first call says so
    return not_listed(routes, served)


def capabilities(route: Route, settings: Settings) -> list[Probe]:
    """Whether the --base-url server's model gives tool calls and takes json_schema output (two tiny requests)."""
    import httpx

    request = _request(route, settings)
    if not route.base_url or not isinstance(request, tuple):
        return []
    url = route.base_url.rstrip("/") + "/chat/completions"
    model = route.model.removeprefix("openai/")
    tool = {"type": "function", "function": {"name": "ping", "description": "Answer a ping.", "parameters": {"type": "object", "properties": {}}}}
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    asks: dict[str, dict[str, Any]] = {
        "tool calls": {"messages": [{"role": "user", "content": "Call the ping tool."}], "tools": [tool], "tool_choice": "required"},
        "structured output": {
            "messages": [{"role": "user", "content": 'Answer {"ok": true}.'}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "probe", "schema": schema}},
        },
    }
    found = []
    for what, body in asks.items():
        try:
            response = httpx.post(url, headers=request[2], json={"model": model, "max_tokens": 16, **body}, timeout=TIMEOUT_S * 6)
            message = (response.json().get("choices") or [{}])[0].get("message") or {} if response.is_success else None
        except Exception as exc:  # noqa: BLE001 - the reachability probe reports a server that is down
            found.append(Probe(f"{what} at {route.base_url}", "warn", f"not checked ({type(exc).__name__})"))
            continue
        if message is None:
            how = "mamabear asks with the schema in the prompt" if what == "structured output" else "agents with tools cannot work with it"
            found.append(Probe(f"{what} at {route.base_url}", "warn", f"{model} refused it (HTTP {response.status_code}); {how}"))
        elif what == "tool calls" and not message.get("tool_calls"):
            found.append(Probe(f"{what} at {route.base_url}", "warn", f"{model} answered with text, not a tool call; agents with tools may not work"))
        else:
            found.append(Probe(f"{what} at {route.base_url}", "ok", f"{model} gives them"))
    return found


def probe(routes: list[Route], settings: Settings) -> list[Probe]:
    """One probe per distinct server among the routes, in parallel."""
    requests: dict[Any, Any] = {}
    unasked: dict[Any, Any] = {}
    for route in routes:
        request = _request(route, settings)
        if isinstance(request, Probe):
            unasked[request.target] = request
        elif request is not None:
            requests.setdefault(request[1], request)
    if not requests:
        return list(unasked.values())
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return [*pool.map(lambda r: _ask(*r), requests.values()), *unasked.values()]
