"""The typed seams of the run path: how a run's work is given its parts, how an attempt is made, how a mission starts.
No ``Any`` in them (``make lint`` runs this), so a change that loosens one is seen here."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

from mamabear.engine import attempt, build, context
from mamabear.mission import runner, start, step

SEAMS = [
    context.RunContext,
    context.Work.kickoff,
    attempt.Attempt.__init__,
    attempt.add_step,
    build.AgentParts.__init__,
    runner.Mission.__init__,
    runner.Mission.kickoff,
    runner.Mission.resumed,
    step.SentStep.__init__,
    step.SentStep.kickoff,
    step.run_step,
    start.MissionStart,
    start.for_mission,
    start.resumed,
]


def annotations(seam: object) -> dict[str, str]:
    if dataclasses.is_dataclass(seam):
        return {f.name: str(f.type) for f in dataclasses.fields(seam)}
    found = {name: str(p.annotation) for name, p in inspect.signature(seam).parameters.items() if name != "self"}  # type: ignore[arg-type]
    return found | {"return": str(inspect.signature(seam).return_annotation)}  # type: ignore[arg-type]


@pytest.mark.parametrize("seam", SEAMS, ids=lambda s: s.__qualname__)
def test_a_seam_of_the_run_path_is_typed_without_any(seam):
    loose = {name: kind for name, kind in annotations(seam).items() if re.search(r"\bAny\b", kind) or kind == str(inspect.Parameter.empty)}
    assert loose == {}, f"{seam.__qualname__}: {loose}"
