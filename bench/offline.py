"""Shared set-up for the crew benchmarks: a throwaway MAMABEAR_HOME, the privacy defaults,
and the scripted model server from tests/fakellm.py. Import it before mamabear or CrewAI."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CREW = "development"  # the 7-task crew
INPUTS = {"goal": "a weather CLI"}

sys.path.insert(0, str(REPO / "tests"))
os.environ["MAMABEAR_HOME"] = tempfile.mkdtemp(prefix="mamabear-bench-")
os.environ["MAMABEAR_NO_MEMORY"] = "1"  # the crew benches measure the run engine; bench/memory.py measures memory

from mamabear.config.settings import apply_privacy_defaults  # noqa: E402

apply_privacy_defaults()

from fakellm import FakeLLM  # noqa: E402, F401
