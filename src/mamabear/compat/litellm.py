"""litellm's bundled price file, read as JSON without importing litellm (seconds) or fetching anything."""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from mamabear.compat.versions import moved

PRICE_FILE = "model_prices_and_context_window_backup.json"


@lru_cache(maxsize=1)
def cost_map() -> dict[str, dict]:
    """litellm's per-model prices and limits; empty when the file is missing or unreadable (doctor and --budget-usd say so)."""
    path = price_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def price_file() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / PRICE_FILE
        if path.is_file():
            return path
    return None


def problems() -> list[str]:
    path = price_file()
    if path is None:
        return [moved("litellm", f"its price file {PRICE_FILE}", "is missing")]
    if "input_cost_per_token" not in cost_map().get("gpt-4.1", {}):
        return [moved("litellm", f"its price file {path}", "cannot be read or no longer has gpt-4.1's input_cost_per_token")]
    return []
