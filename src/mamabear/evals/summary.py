"""An eval's figures (per case, per check, overall) and its baseline: saved with --save-baseline, gated with --baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mamabear.errors import UsageError


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def figures(results: list[Any]) -> dict[str, Any]:
    """Pass rate, mean score, cost (and cost per passing run) and mean time, of these results."""
    runs = len(results)
    passed = sum(r.passed for r in results)
    cost = sum(r.cost_usd for r in results)
    return {
        "runs": runs,
        "pass_rate": round(passed / runs, 3) if runs else 0.0,
        "score": _mean([r.score for r in results if r.score is not None]),
        "cost_usd": round(cost, 6),
        "cost_per_pass_usd": round(cost / passed, 6) if passed else None,
        "seconds": _mean([r.seconds for r in results]),
    }


def summary(name: str, results: list[Any]) -> dict[str, Any]:
    cases: dict[str, dict[str, Any]] = {}
    for case in dict.fromkeys(r.case for r in results):
        mine = [r for r in results if r.case == case]
        checks = {}
        for label in dict.fromkeys(v.check for r in mine for v in r.verdicts):
            seen = [v for r in mine for v in r.verdicts if v.check == label]
            scores = [v.score for v in seen if v.score is not None]
            checks[label] = {"pass_rate": round(sum(v.passed for v in seen) / len(seen), 3), "score": _mean(scores), "last": seen[-1].reason}
        cases[case] = {**figures(mine), "checks": checks}
    return {"eval": name, **figures(results), "cases": cases}


def write_baseline(path: Path, doc: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write the baseline {path} ({exc.strerror or exc}).") from exc


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read the baseline {path} ({exc.strerror or exc}); make one with --save-baseline {path}.") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not a baseline (not JSON: {exc.msg}); make one with --save-baseline.") from exc
    if not isinstance(doc, dict) or "pass_rate" not in doc:
        raise UsageError(f"{path} is not a baseline (no pass_rate); make one with --save-baseline.")
    return doc


def drops(now: dict[str, Any], baseline: dict[str, Any], margin_pass_rate: float, margin_score: float) -> list[tuple[str, float, float, float]]:
    """What fell beyond its margin: (``pass_rate`` or ``score``, now, in the baseline, the margin); none when nothing did."""
    found = []
    if now["pass_rate"] < baseline["pass_rate"] - margin_pass_rate - 1e-9:
        found.append(("pass_rate", now["pass_rate"], baseline["pass_rate"], margin_pass_rate))
    if now.get("score") is not None and baseline.get("score") is not None and now["score"] < baseline["score"] - margin_score - 1e-9:
        found.append(("score", now["score"], baseline["score"], margin_score))
    return found


def regressions(now: dict[str, Any], baseline: dict[str, Any], margin_pass_rate: float, margin_score: float) -> list[str]:
    """What dropped beyond its margin, as sentences (none: no regression)."""
    return [
        f"the pass rate fell to {was:.0%} from {base:.0%} (margin {margin:.0%})"
        if what == "pass_rate"
        else f"the mean score fell to {was:.1f} from {base:.1f} (margin {margin:g})"
        for what, was, base, margin in drops(now, baseline, margin_pass_rate, margin_score)
    ]


def judged(name: str, results: list[Any], cases: Any, baseline: str | None, base: dict[str, Any] | None, save_baseline: str | None) -> tuple[dict, str | None]:
    """An eval's document (its baseline written first, when asked) and, when it regressed against ``base`` (read from
    ``baseline``), the sentence that says how: the eval's exit code is 1 then, 0 otherwise."""
    doc = summary(name, results)
    if save_baseline:
        write_baseline(Path(save_baseline), doc)
    doc["runs_detail"] = [r.to_dict() for r in results]
    if base is None:
        return doc, None
    found = regressions(doc, base, cases.margin_pass_rate, cases.margin_score)
    doc["baseline"] = {"file": baseline, "pass_rate": base["pass_rate"], "score": base.get("score"), "regressions": found}
    return doc, (f"eval {name} regressed against {baseline}: " + "; ".join(found) + ".") if found else None
