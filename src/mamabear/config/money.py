"""Costs as a person reads them: never $0 for what has no known price."""

from __future__ import annotations


def fmt_usd(cost: float | None, unpriced_calls: int = 0) -> str:
    """ "$0.0012"; "unpriced" when nothing of it has a price; "$0.0012 + 3 unpriced" when part has none."""
    if cost is None:
        return "unpriced"
    shown = f"${cost:.4f}"
    return f"{shown} + {unpriced_calls} unpriced" if unpriced_calls else shown
