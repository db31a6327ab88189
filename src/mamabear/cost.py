"""Prices per token: overrides from config/models.yaml, then litellm's bundled cost map.

The map is read from the JSON file litellm ships, without importing litellm (slow)
and without fetching anything from the internet.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _cost_map() -> dict[str, dict]:
    spec = importlib.util.find_spec("litellm")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return {}


class Pricer:
    def __init__(self, overrides: dict[str, tuple[float, float]]) -> None:
        self.overrides = overrides  # model -> USD per million tokens (input, output)

    def per_token(self, model: str) -> tuple[float, float] | None:
        """USD per input and per output token, or None when the model is unknown."""
        if model in self.overrides:
            per_million_in, per_million_out = self.overrides[model]
            return per_million_in / 1e6, per_million_out / 1e6
        known = _cost_map()
        _, _, bare = model.partition("/")
        for key in (model, bare):
            entry = known.get(key) if key else None
            if entry and "input_cost_per_token" in entry:
                return float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))
        return None

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        price = self.per_token(model)
        if price is None:
            return 0.0
        return tokens_in * price[0] + tokens_out * price[1]
