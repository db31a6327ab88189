"""`mamabear tune`: cheaper or better crews, proposed, measured on an eval's cases, and kept only if they hold up.

The crew as it is sets the baseline (its eval). The candidates come from the store's history and that eval: each task
not on the fast tier is tried there (``complexity: 3``), most expensive first; and the task whose output the
failed judged checks read (the crew's last) gets a description the model coordinator revised from their reasons.
Each candidate is an edit of the project's ``config/tasks.yaml`` (edits.py), evaluated on a copy of the project. A
candidate is kept when its pass rate and mean score stay within the case file's margins at a lower cost per passing
run, or rise at no more cost. The best kept one is the winner: shown as a diff, written only with ``--apply``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamabear.engine.services import Services
from mamabear.errors import UsageError
from mamabear.evals.cases import CaseFile
from mamabear.evals.edits import Edit, write
from mamabear.evals.runner import EvalRun, side_llm
from mamabear.evals.summary import drops, summary

REVISE_PROMPT = (
    "You improve the instructions of one task of an AI crew. Cases of an evaluation failed with the reasons below. "
    "Rewrite the task's description so the work meets them, keeping every {{placeholder}} exactly as written and "
    "keeping what already works. Answer with the new description only.\n\nThe description now:\n{description}\n\n"
    "The failed checks and why:\n{failures}"
)


@dataclass
class Candidate:
    what: str  # in a few words, for the table
    edit: Edit | None  # None: the baseline
    figures: dict[str, Any] = field(default_factory=dict)
    verdict: str = ""  # kept | why not
    kept: bool = False


def history(ws: Services, crew: str, limit: int = 200) -> list[dict[str, Any]]:
    """Per task of the crew's recent runs: runs, failure rate, retries (failed model calls), cost and latency."""
    runs = ws.store.list_runs(limit=limit, crew=crew)
    per: dict[str, dict[str, Any]] = {}
    for run in runs:
        calls = ws.store.llm_calls(run.id)
        for row in ws.store.tasks(run.id):
            entry = per.setdefault(row.task, {"task": row.task, "runs": 0, "failed": 0, "retries": 0, "cost_usd": 0.0, "seconds": 0.0})
            entry["runs"] += 1
            entry["failed"] += row.status == "failed"
            entry["retries"] += sum(1 for c in calls if c["task_position"] == row.position and c["outcome"] != "ok")
            entry["cost_usd"] += row.cost_usd
            entry["seconds"] += (row.finished_at - row.started_at) if row.finished_at and row.started_at else 0.0
    for entry in per.values():
        n = entry["runs"] or 1
        entry.update(failure_rate=round(entry["failed"] / n, 3), cost_usd=round(entry["cost_usd"] / n, 6), seconds=round(entry["seconds"] / n, 2))
    return sorted(per.values(), key=lambda e: -e["cost_usd"])


class Tuner:
    def __init__(self, ws: Services, cases: CaseFile, crew: str | None, repeat: int = 1, budget_usd: float | None = None, on_result: Any = None) -> None:
        """``crew``: None for the case file's (EvalRun says when neither names one)."""
        if ws.settings.project_dir is None:
            raise UsageError("tune changes a project's config/tasks.yaml; run it in the project's root (or set MAMABEAR_CONFIG_DIR).")
        self.ws, self.cases, self.crew, self.repeat, self.budget_usd, self.on_result = ws, cases, crew, repeat, budget_usd, on_result
        self.root: Path = ws.settings.project_dir
        self.spent = 0.0

    def run(self) -> tuple[list[Candidate], list[dict[str, Any]]]:
        """The baseline first, then each candidate measured (until the budget is spent); and the task history."""
        plan = EvalRun(self.ws, self.cases, self.crew).planned()[0].plan
        baseline = Candidate("as it is", None)
        baseline.figures, failed = self._measure(self.ws)
        past = history(self.ws, plan.crew.name)  # the baseline's runs included
        baseline.verdict, baseline.kept = "baseline", True
        found = [baseline]
        for candidate in self._candidates(plan, past, failed):
            if self.budget_usd is not None and self.spent >= self.budget_usd:
                candidate.verdict = f"not tried: the budget of ${self.budget_usd:g} was spent"
                found.append(candidate)
                continue
            with tempfile.TemporaryDirectory(prefix="mamabear-tune-") as tmp:
                copy = self._copy(Path(tmp))
                assert candidate.edit is not None
                write(candidate.edit, copy / candidate.edit.path.relative_to(self.root))
                candidate.figures, _ = self._measure(Services(self.ws.settings, project_dir=copy))
            candidate.kept, candidate.verdict = judge(baseline.figures, candidate.figures, self.cases)
            found.append(candidate)
        return found, past

    def _measure(self, ws: Services) -> tuple[dict[str, Any], list[str]]:
        results = EvalRun(ws, self.cases, self.crew, self.repeat, on_result=self.on_result, tag="tune").run()
        self.spent += sum(r.cost_usd for r in results)
        failed = [f"- case {r.case}: {v.check}: {v.reason}" for r in results for v in r.verdicts if not v.passed]
        return summary(self.cases.name, results), failed

    def _candidates(self, plan: Any, past: list[dict[str, Any]], failed: list[str]) -> list[Candidate]:
        tasks_file = self.root / "config" / "tasks.yaml"
        if not tasks_file.is_file():
            raise UsageError(f"{tasks_file} does not exist; the tuner changes the tasks a project defines.")
        cost = {e["task"]: e["cost_usd"] for e in past}
        fast = self.ws.models.route("fast", self.ws.settings).model
        found = []
        for task in sorted((t for t in plan.tasks if t.tier and t.tier != "fast"), key=lambda t: -cost.get(t.id, 0.0)):
            if task.route is not None and task.route.model != fast:
                found.append(Candidate(f"{task.id} on the fast tier ({fast})", Edit(tasks_file, task.id, "complexity", 3)))
        if failed:
            last = plan.tasks[-1].id
            revised = self._revised(last, failed)
            if revised:
                found.append(Candidate(f"{last}'s description revised by the model coordinator", Edit(tasks_file, last, "description", revised)))
        return found

    def _revised(self, task_id: str, failed: list[str]) -> str | None:
        """The last task's description as the model coordinator rewrites it from the failed checks."""
        rewriter = side_llm(self.ws, "model_coordinator", "tuner", 0.2)
        description = self.ws.catalog.tasks[task_id].description
        try:
            answer = str(rewriter.llm.call([{"role": "user", "content": REVISE_PROMPT.format(description=description, failures="\n".join(failed[:20]))}]))
        except Exception:  # noqa: BLE001 - no revision to try: the other candidates still are
            return None
        finally:
            self.spent += rewriter.guard.spent_usd
        text = answer.strip().strip("`").strip()
        return text if text and text != description.strip() else None

    def _copy(self, into: Path) -> Path:
        for part in ("config", "crews"):
            if (self.root / part).is_dir():
                shutil.copytree(self.root / part, into / part)
        return into


def judge(base: dict[str, Any], now: dict[str, Any], cases: CaseFile) -> tuple[bool, str]:
    """Whether a candidate holds the baseline's quality within the margins at a lower cost per passing run, or
    raises it at no more cost; and why, in a few words."""
    fell = drops(now, base, cases.margin_pass_rate, cases.margin_score)
    if fell:
        what, was, then, _ = fell[0]
        return False, f"pass rate {was:.0%} against {then:.0%}" if what == "pass_rate" else f"score {was:.1f} against {then:.1f}"
    cheaper = now["cost_per_pass_usd"] is not None and (base["cost_per_pass_usd"] is None or now["cost_per_pass_usd"] < base["cost_per_pass_usd"])
    better = now["pass_rate"] > base["pass_rate"] or (now.get("score") or 0) > (base.get("score") or 0)
    if cheaper:
        return True, "kept: as good, cheaper per passing run"
    if better and (now["cost_usd"] <= base["cost_usd"] * 1.05):
        return True, "kept: better, at no more cost"
    return False, "no cheaper and no better"


def winner(found: list[Candidate]) -> Candidate | None:
    """The kept candidate with the highest pass rate, then the lowest cost per passing run."""
    kept = [c for c in found if c.kept and c.edit is not None]
    return min(kept, key=lambda c: (-c.figures["pass_rate"], c.figures["cost_per_pass_usd"] or float("inf")), default=None)
