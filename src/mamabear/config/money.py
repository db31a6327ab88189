"""Costs as a person reads them: never $0 for what has no known price."""

from __future__ import annotations


def known_cost(cost: float | None, unpriced_calls: int = 0) -> float | None:
    """A cost, or None (unknown, never $0) when nothing of it has a price and calls had none."""
    return None if cost is None or (unpriced_calls and not cost) else round(cost, 6)


def fmt_usd(cost: float | None, unpriced_calls: int = 0) -> str:
    """ "$0.0012"; "unpriced" when nothing of it has a price; "$0.0012 + 3 unpriced" when part of it has none."""
    known = known_cost(cost, unpriced_calls)
    if known is None:
        return "unpriced"
    return f"${known:.4f} + {unpriced_calls} unpriced" if unpriced_calls else f"${known:.4f}"
