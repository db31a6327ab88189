"""Is a model provider answering? One small request each (its models list), with a short timeout: for `doctor`.

Only `doctor` calls this: a run never contacts a provider before its first model call.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mamabear.models import Route
from mamabear.settings import Settings

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
    ok: bool
    detail: str


def _request(route: Route, settings: Settings) -> tuple[str, str, dict, dict] | None:
    """(target shown to the user, URL, headers, params), or None when there is nothing to ask."""
    if route.base_url:
        key = settings.api_key or settings.env.get("OPENAI_API_KEY")
        return route.base_url, route.base_url.rstrip("/") + "/models", {"Authorization": f"Bearer {key}"} if key else {}, {}
    endpoint = ENDPOINTS.get(route.provider)
    key = settings.env.get(route.key_env) if route.key_env else None
    if endpoint is None or not key:
        return None
    url, headers, param = endpoint
    return route.provider, url, headers(key), {param: key} if param else {}


def _ask(target: str, url: str, headers: dict, params: dict) -> Probe:
    import httpx

    started = time.monotonic()
    try:
        response = httpx.get(url, headers=headers, params=params, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc).splitlines()[0]
        return Probe(target, False, f"cannot reach {target} ({reason}); check --base-url, the server, or your network")
    took = f"{(time.monotonic() - started) * 1000:.0f} ms"
    if response.status_code in (401, 403):
        return Probe(target, False, f"{target} refused the API key (HTTP {response.status_code}, {took}); check the key's variable")
    if response.status_code >= 500:
        return Probe(target, False, f"{target} answered HTTP {response.status_code} ({took}); the server is failing")
    return Probe(target, True, f"{target} answered in {took}" + ("" if response.is_success else f" (HTTP {response.status_code} for its models list)"))


def probe(routes: list[Route], settings: Settings) -> list[Probe]:
    """One probe per distinct server among the routes, in parallel."""
    requests = {}
    for route in routes:
        request = _request(route, settings)
        if request is not None:
            requests.setdefault(request[1], request)
    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(lambda r: _ask(*r), requests.values()))
