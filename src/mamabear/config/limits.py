"""A run's limits: how long it may take and how much it may spend; parsed from flags, kept in the store."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from mamabear.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str, flag: str = "--max-duration") -> float:
    """Seconds in '90s', '30m', '24h', '7d', '1h30m' or a bare number of seconds."""
    raw = text.strip().lower()
    try:
        seconds = float(raw)
    except ValueError:
        parts = _DURATION.findall(raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise UsageError(f"{flag} '{text}': write a duration like 90s, 30m, 24h, 7d or 1h30m.") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{flag} '{text}': the duration must be a finite number of seconds more than zero.")
    return seconds


@dataclass(frozen=True)
class Limits:
    budget_usd: float | None = None
    budget_tokens: int | None = None
    max_duration_s: float | None = None  # per attempt: a resume gets a fresh clock

    def __post_init__(self) -> None:
        if self.budget_usd is not None and not (math.isfinite(self.budget_usd) and self.budget_usd > 0):  # NaN compares false
            raise UsageError(f"--budget-usd {self.budget_usd:g}: a budget must be a finite amount more than zero.")
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise UsageError(f"--budget-tokens {self.budget_tokens}: a budget must be more than zero.")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict | None) -> Limits:
        data = data or {}
        return cls(**{k: data.get(k) for k in ("budget_usd", "budget_tokens", "max_duration_s")})

    def overridden(self, **given: float | int | None) -> Limits:
        """These limits with every flag a resume was given replacing the stored one."""
        return Limits(**{**asdict(self), **{k: v for k, v in given.items() if v is not None}})
