"""An item's deterministic criteria, run in the mission's sandbox session: a command that must exit 0, a file that must exist.

What no command can check (a ``judge`` criterion) is left for the judge. Each verdict keeps its
evidence (the command's exit code and the end of its output, or what the file tool said), for the
retry's feedback, the planner's confirmation and the mission report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mamabear.mission.plan import Criterion, PlanItem
from mamabear.sandbox.backend import CommandResult

EVIDENCE_CHARS = 600  # the end of a command's output kept as evidence


@dataclass(frozen=True)
class Verdict:
    criterion: Criterion
    passed: bool
    evidence: str

    def line(self) -> str:
        mark = "passed" if self.passed else "failed"
        return f"{self.criterion.kind} `{self.criterion.check}` {mark}: {self.evidence}"


def run_checks(sessions: Any, session: dict, item: PlanItem, context: Any, timeout_s: float | None = None) -> tuple[list[Verdict], list[Criterion]]:
    """The verdicts of the item's command and file criteria, in order, and the criteria left for the judge."""
    verdicts: list[Verdict] = []
    judged: list[Criterion] = []
    for criterion in item.criteria:
        if criterion.kind == "judge":
            judged.append(criterion)
        elif criterion.kind == "command":
            verdicts.append(_command(sessions, session, criterion, context, timeout_s))
        else:
            verdicts.append(_file(sessions, session, criterion, context))
    return verdicts, judged


def _command(sessions: Any, session: dict, criterion: Criterion, context: Any, timeout_s: float | None) -> Verdict:
    result = sessions.exec(session, criterion.check, timeout_s, context=context)
    if not isinstance(result, CommandResult):  # the policy refused it
        return Verdict(criterion, False, result)
    tail = result.output.strip()[-EVIDENCE_CHARS:]
    ended = "timed out" if result.timed_out else f"exit code {result.exit_code}"
    return Verdict(criterion, result.exit_code == 0, f"{ended}" + (f"; output ends: {tail}" if tail else ""))


def _file(sessions: Any, session: dict, criterion: Criterion, context: Any) -> Verdict:
    shown = sessions.edit(session, "view", criterion.check, context=context, view_range=[1, 1])
    if shown.startswith("refused:"):
        return Verdict(criterion, False, shown.removeprefix("refused: "))
    return Verdict(criterion, True, "it exists")


def failure(verdicts: list[Verdict]) -> str | None:
    """The feedback for a retry: every failed verdict, one line each (None when all passed)."""
    failed = [v.line() for v in verdicts if not v.passed]
    return "; ".join(failed) if failed else None
