"""An eval case's checks on one run: deterministic ones on its output or in its sandbox, judged ones by a model.

Each check gives a ``Verdict``: passed or not, a score for judged checks (1-10, passing at its ``pass_at``) and the
reason, short enough for a table and for the tuner's prompts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from mamabear.evals.cases import Check

REASON_CHARS = 300


@dataclass(frozen=True)
class Verdict:
    check: str  # Check.label()
    kind: str
    passed: bool
    reason: str
    score: float | None = None  # judged checks only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdicts(checks: tuple[Check, ...], output: str | None, command: Any, judge: Any, failed: str | None = None) -> list[Verdict]:
    """Each check's verdict on a run's ``output``. ``command(cmd) -> (exit code, output tail)`` runs in the run's
    sandbox; ``judge(rubric, output) -> (score, reason)``. A run that did not complete (``failed``) fails every check."""
    if failed is not None or output is None:
        why = f"the run did not complete: {failed or 'no output'}"
        return [Verdict(c.label(), c.kind, False, why[:REASON_CHARS], 0.0 if c.kind == "judge" else None) for c in checks]
    return [_verdict(c, output, command, judge) for c in checks]


def _verdict(check: Check, output: str, command: Any, judge: Any) -> Verdict:
    label, kind = check.label(), check.kind
    if kind == "contains":
        found = check.value in output
        return Verdict(label, kind, found, "found" if found else "not in the output")
    if kind == "regex":
        match = re.search(check.value, output)
        return Verdict(label, kind, match is not None, f"matched {match.group(0)[:80]!r}" if match else "no match in the output")
    if kind == "json_schema":
        return _schema(check, output)
    if kind == "command":
        code, tail = command(check.value)
        return Verdict(label, kind, code == 0, f"exit code {code}" + (f"; output ends: {tail[-200:]}" if tail else ""))
    score, reason = judge(check.value, output)
    return Verdict(label, kind, score >= check.pass_at, reason[:REASON_CHARS], float(score))


def _schema(check: Check, output: str) -> Verdict:
    from jsonschema import Draft202012Validator

    text = output.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Verdict(check.label(), check.kind, False, f"the output is not JSON ({exc.msg} at character {exc.pos + 1})")
    errors = sorted(Draft202012Validator(check.value).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "the top level"
        return Verdict(check.label(), check.kind, False, f"{where}: {errors[0].message}"[:REASON_CHARS])
    return Verdict(check.label(), check.kind, True, "valid")


JUDGE_PROMPT = (
    "You score a piece of work against a rubric. Read the rubric and the work, then answer with JSON only: "
    '{{"score": <a whole number from 1 (fails the rubric entirely) to 10 (meets it fully)>, "reason": "<one or two sentences>"}}.\n\n'
    "Rubric: {rubric}\n\nThe work:\n{output}"
)
OUTPUT_CHARS = 12_000  # of the output shown to the judge


def judged(answer: str) -> tuple[int, str]:
    """The judge's score and reason from its answer; an answer without them scores 1, saying so."""
    match = re.search(r"\{.*\}", answer, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else {}
        score = int(data["score"])
        return max(1, min(10, score)), str(data.get("reason") or "")
    except (ValueError, KeyError, TypeError):
        return 1, f"the judge gave no score: {' '.join(answer.split())[:120]}"


def judge_with(llm: Any) -> Any:
    """``judge(rubric, output) -> (score, reason)`` asking ``llm`` (a CrewAI LLM)."""

    def judge(rubric: str, output: str) -> tuple[int, str]:
        from mamabear.errors import UsageError
        from mamabear.llm.guard import RunStopped

        try:
            answer = llm.call([{"role": "user", "content": JUDGE_PROMPT.format(rubric=rubric, output=output[:OUTPUT_CHARS])}])
        except RunStopped as exc:  # a replay that misses: the eval stops, exit 2, with the sentence
            raise UsageError(f"the judge's call: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - a judge that cannot answer fails its check, in a sentence
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return 1, f"the judge could not score it: {first[:200]}"
        return judged(str(answer))

    return judge
