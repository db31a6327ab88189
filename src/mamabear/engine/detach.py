"""Start a run in the background: a detached ``mamabear run`` process, logging to a file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mamabear.errors import MamabearError
from mamabear.store.database import Store

START_TIMEOUT_S = 60.0


def spawn(args: list[str], run_id: str, home: Path, store: Store) -> tuple[int, Path]:
    """Run ``mamabear ARGS`` in its own session; return once the run is in the store."""
    log = home / "logs" / f"{run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mamabear", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if store.has_run(run_id):
            return proc.pid, log
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise MamabearError(f"the background run exited before it started: {tail[0]} (log: {log}).")
        time.sleep(0.05)
    raise MamabearError(f"the background run did not start within {START_TIMEOUT_S:.0f}s; see {log}.")
