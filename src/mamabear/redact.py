"""Keep secrets out of everything mamabear writes: the store, logs and progress output."""

from __future__ import annotations

import re
from collections.abc import Mapping

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
MASK = "[REDACTED]"


class Redactor:
    """Replaces the values of secret-looking environment variables wherever they appear."""

    def __init__(self, env: Mapping[str, str], min_length: int = 8) -> None:
        values = {v for k, v in env.items() if _SECRET_NAME.search(k) and v and len(v) >= min_length}
        self._pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))) if values else None

    def __call__(self, text: str | None) -> str | None:
        if text is None or self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
