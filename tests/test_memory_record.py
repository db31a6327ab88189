"""The memory commands' CrewAI-free record and ranking are CrewAI's own (a contract test), and they never import CrewAI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from datetime import datetime, timedelta

import pytest
from crewai.memory.types import MemoryConfig, MemoryRecord, compute_composite_score

from conftest import REPO, subprocess_env
from mamabear.memory.record import Record, composite_score


def test_a_record_has_crewais_fields_and_defaults() -> None:
    ours, theirs = Record(content="x"), MemoryRecord(content="x")
    assert {f.name for f in fields(Record)} == set(MemoryRecord.model_fields)
    for name in MemoryRecord.model_fields:
        if name not in ("id", "created_at", "last_accessed"):
            assert getattr(ours, name) == getattr(theirs, name), name
    assert abs((ours.created_at - theirs.created_at).total_seconds()) < 5 and ours.created_at.tzinfo is None
    assert MemoryRecord.model_validate(ours.model_dump()).model_dump() == {**ours.model_dump(exclude={"embedding"})}


@pytest.mark.parametrize("age_days, importance, semantic", [(0, 0.5, 0.9), (12, 0.9, 0.4), (400, 0.1, 0.7)])
def test_ranking_is_crewais_recall_ranking(age_days, importance, semantic) -> None:
    created = datetime.utcnow() - timedelta(days=age_days)
    theirs, _ = compute_composite_score(MemoryRecord(content="x", importance=importance, created_at=created), semantic, MemoryConfig())
    ours = composite_score(Record(content="x", importance=importance, created_at=created), semantic)
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_memory_commands_never_import_crewai(isolated) -> None:
    code = (
        "import sys; from mamabear.cli import main; "
        "codes = [main(a) for a in (['memory', 'add', 'otters hold hands'], ['memory', 'search', 'sleeping otters'], "
        "['memory', 'list'], ['memory', 'stats'])]; "
        "print(codes, 'crewai' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=subprocess_env(MAMABEAR_HOME=str(isolated), MAMABEAR_NO_MEMORY=""),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0] False False"
    assert "otters hold hands" in out.stdout
