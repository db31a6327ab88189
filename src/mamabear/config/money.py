"""Costs as a person reads them: never $0 for what has no known price."""

from __future__ import annotations


def fmt_usd(cost: float | None, unpriced_calls: int = 0) -> str:
    """ "$0.0012"; "unpriced" when nothing of it has a price (no cost known, and calls had none); "$0.0012 + 3
    unpriced" when part of it has none."""
    if cost is None or (unpriced_calls and not cost):
        return "unpriced"
    shown = f"${cost:.4f}"
    return f"{shown} + {unpriced_calls} unpriced" if unpriced_calls else shown
