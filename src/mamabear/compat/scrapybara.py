"""Scrapybara's internals: an instance handle for a known instance id, built on the client's own HTTP client."""

from __future__ import annotations

import inspect
from typing import Any

from mamabear.compat.versions import moved


def instance(client: Any, instance_id: str) -> Any:
    """The SDK's UbuntuInstance for an instance started earlier (the SDK makes one only when it starts it)."""
    from scrapybara.client import UbuntuInstance

    return UbuntuInstance(instance_id, None, "running", client._base_client)  # type: ignore[arg-type]  # launch time unknown here


def problems() -> list[str]:
    try:
        from scrapybara import Scrapybara
        from scrapybara.client import UbuntuInstance
    except ImportError as exc:
        return [moved("scrapybara", f"module {exc.name}", "cannot be imported")]
    found = []
    client = Scrapybara(api_key="compat-check", base_url="http://127.0.0.1:9")  # makes no request
    if getattr(client, "_base_client", None) is None:
        found.append(moved("scrapybara", "Scrapybara._base_client", "is gone"))
    if list(inspect.signature(UbuntuInstance).parameters)[:4] != ["id", "launch_time", "status", "client"]:
        found.append(moved("scrapybara", "UbuntuInstance(id, launch_time, status, client)", "has changed"))
    return found
