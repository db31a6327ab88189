"""Prices per token: overrides from config/models.yaml, then litellm's bundled cost map.

The map is read from the JSON file litellm ships, without importing litellm (slow)
and without fetching anything from the internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mamabear.compat.litellm import cost_map

if TYPE_CHECKING:
    from mamabear.config.models import ModelTable
    from mamabear.config.settings import Settings


class Pricer:
    def __init__(self, overrides: dict[str, tuple[float, float]], local: bool = False) -> None:
        self.overrides = overrides  # model -> USD per million tokens (input, output)
        # A --base-url server is priced only by models.yaml's prices: a local model named gpt-4.1 is not GPT-4.1.
        self.local = local

    @classmethod
    def for_run(cls, table: ModelTable, settings: Settings) -> Pricer:
        """The run's prices (``table``: its ModelTable). A --base-url server's models are priced by ``prices:`` alone,
        unless it is a gateway to the providers' own models (``base_url_prices: litellm`` in models.yaml, or
        MAMABEAR_BASE_URL_PRICES=litellm): then litellm's map prices them as it prices the providers'."""
        gateway = (settings.env.get("MAMABEAR_BASE_URL_PRICES") or table.base_url_prices) == "litellm"
        return cls(table.usd_per_million, local=bool(settings.base_url) and not gateway)

    def _known(self, model: str, field: str) -> dict | None:
        """The cost map's entry for the model (as configured, or without its provider prefix) that has ``field``."""
        if self.local:
            return None
        known = cost_map()
        for key in (model, model.partition("/")[2]):
            entry = known.get(key) if key else None
            if entry and field in entry:
                return entry
        return None

    def per_token(self, model: str) -> tuple[float, float] | None:
        """USD per input and per output token, or None when the model is unknown."""
        if model in self.overrides:
            per_million_in, per_million_out = self.overrides[model]
            return per_million_in / 1e6, per_million_out / 1e6
        entry = self._known(model, "input_cost_per_token")
        return (float(entry["input_cost_per_token"]), float(entry.get("output_cost_per_token", 0.0))) if entry else None

    def unpriced(self, models: list[str]) -> list[str]:
        """The models whose calls would be shown as unpriced (and held by no --budget-usd): no price is known for them."""
        return [m for m in models if self.per_token(m) is None]

    def cached_per_token(self, model: str) -> float | None:
        """USD per input token read from the provider's prompt cache, when the cost map knows a discount."""
        entry = None if model in self.overrides else self._known(model, "cache_read_input_token_cost")
        return float(entry["cache_read_input_token_cost"]) if entry else None

    def cost(self, model: str, tokens_in: int, tokens_out: int, cached_in: int = 0) -> float:
        """``cached_in``: input tokens (counted in ``tokens_in``) the provider's prompt cache served, at its cached rate."""
        price = self.per_token(model)
        if price is None:
            return 0.0
        cached_in = min(max(cached_in, 0), tokens_in)
        cached_price = self.cached_per_token(model) if cached_in else None
        if cached_price is None:
            return tokens_in * price[0] + tokens_out * price[1]
        return (tokens_in - cached_in) * price[0] + cached_in * cached_price + tokens_out * price[1]
