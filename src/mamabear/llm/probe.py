"""Is a model provider answering? One small request each (its models list), with a short timeout: for `doctor`.

Only `doctor` calls this: a run never contacts a provider before its first model call.
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
    return Probe(target, "ok", f"{target} answered in {took}")


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
