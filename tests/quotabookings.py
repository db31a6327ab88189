"""Record the clock reading of every quota booking a real run makes, one line per booking appended to a file.

QuotaBook promises that two bookings of a provider with an rpm limit are at least 60/rpm seconds apart on its clock
(read once, inside the file's write lock, per try). When a request then reaches the model server depends on the
process and the machine's load, so tests of the quota check these stamps; arrival times only come after them.

In a subprocess: python -c "import quotabookings; quotabookings.run_cli(LOG, ARGS...)" with tests/ on sys.path.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def record(log: Path, patch: Callable[[Any, str, Any], None] = setattr) -> None:
    """Patch QuotaBook so each booking appends its clock reading to `log` (pass monkeypatch.setattr as patch to have it undone)."""
    from mamabear.llm.quota import QuotaBook

    init, acquire = QuotaBook.__init__, QuotaBook.acquire

    def recording_init(self: QuotaBook, path: Path, quotas: Any, clock: Callable[[], float] = time.time) -> None:
        last = threading.local()

        def stamped() -> float:
            last.reading = clock()
            return last.reading

        init(self, path, quotas, clock=stamped)
        self._test_last_reading = last

    def recording_acquire(self: QuotaBook, provider: str, tokens: int, wait: Callable[[float, str], None]) -> float:
        waited = acquire(self, provider, tokens, wait)
        if self.limits(provider) is not None:
            # The try that booked read the clock last in this thread: that reading is the booking's own stamp.
            line = f"{self._test_last_reading.reading!r}\n".encode()
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # one short append per line: no torn lines
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        return waited

    patch(QuotaBook, "__init__", recording_init)
    patch(QuotaBook, "acquire", recording_acquire)


def bookings(log: Path) -> list[float]:
    """The stamps recorded in `log`, in time order."""
    return sorted(float(line) for line in log.read_text().split())


def run_cli(log: str, *args: str) -> None:
    """Run the mamabear CLI in this process with bookings recorded to `log`; exits with its code."""
    record(Path(log))
    from mamabear.cli import main

    sys.exit(main(list(args)))
