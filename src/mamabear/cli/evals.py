"""mamabear eval: measure a crew (or missions) on a case file; compare with a baseline for CI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, library_chatter_off, print_error, table
from mamabear.cli.run import BASE_URL, MODEL, QUIET, RECORD, REPLAY, check_tape


def eval_command(
    crew: Optional[str] = typer.Argument(None, metavar="[CREW]", help="The crew measured (default: the case file's `crew:`)."),
    cases_file: str = typer.Option(..., "--cases", metavar="FILE", help="The case file, evals/NAME.yaml."),
    repeat: int = typer.Option(1, "--repeat", min=1, metavar="N", help="Run each case N times (pass rates over N)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", metavar="FILE", help="Exit 1 when the pass rate or score falls below FILE's beyond the margin."),
    save_baseline: Optional[str] = typer.Option(None, "--save-baseline", metavar="FILE", help="Write these results as the baseline to FILE."),
    model: Optional[str] = MODEL,
    base_url: Optional[str] = BASE_URL,
    record: Optional[str] = RECORD,
    replay: Optional[str] = REPLAY,
    quiet: bool = QUIET,
    json_out: bool = JSON,
) -> None:
    """Run each case of a case file, check its output, and show pass rate, score, cost and time per case and check."""
    from mamabear.config.redact import Redactor
    from mamabear.engine.services import Services
    from mamabear.evals.cases import load
    from mamabear.evals.runner import EvalRun
    from mamabear.evals.summary import judged, load_baseline
    from mamabear.llm.tape import Tape

    check_tape(record, replay, None)
    ws = Services(model=model, base_url=base_url, replay=replay, no_cache=True)  # each repeat is a sample, not a cached answer
    cases = load(Path(cases_file))
    base = load_baseline(Path(baseline)) if baseline else None  # a missing baseline is found before any run
    tape = Tape.for_flags(record, replay, Redactor.for_settings(ws.settings))
    err = console(stderr=True)

    def told(result: Any) -> None:
        if not quiet:
            mark = "passed" if result.passed else "failed"
            err.print(f"[dim]{result.case} #{result.repeat}: {mark} (run {result.run_id}, {result.status}, ${result.cost_usd:.4f}, {result.seconds:.1f}s)[/]")

    with library_chatter_off():
        results = EvalRun(ws, cases, crew, repeat, tape=tape, on_result=told).run()
    doc, regressed = judged(cases.name, results, cases, baseline, base, save_baseline)
    if json_out:
        emit_json(doc)
    else:
        _render(doc)
    if regressed:
        print_error(regressed)
        raise typer.Exit(1)


def _render(doc: dict[str, Any]) -> None:
    rows = table("case / check", "runs", "pass rate", "score", "cost", "per pass", "time")
    for name, case in doc["cases"].items():
        money = (_usd(case["cost_usd"]), _usd(case["cost_per_pass_usd"]))
        rows.add_row(name, str(case["runs"]), _pct(case["pass_rate"]), _score(case["score"]), *money, f"{case['seconds']:.1f}s")
        for label, check in case["checks"].items():
            rows.add_row(f"  {label}", "", _pct(check["pass_rate"]), _score(check["score"]), "", "", "")
    rows.add_row("all", str(doc["runs"]), _pct(doc["pass_rate"]), _score(doc["score"]), _usd(doc["cost_usd"]), _usd(doc["cost_per_pass_usd"]), "")
    console().print(rows)
    failing = [(name, label, check["last"]) for name, case in doc["cases"].items() for label, check in case["checks"].items() if check["pass_rate"] < 1]
    for name, label, why in failing:
        sys.stdout.write(f"{name}: {label} failed: {why}\n")


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _score(score: float | None) -> str:
    return "-" if score is None else f"{score:.1f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def tune_command(
    crew: Optional[str] = typer.Argument(None, metavar="[CREW]", help="The crew tuned (default: the case file's `crew:`)."),
    cases_file: str = typer.Option(..., "--cases", metavar="FILE", help="The case file the candidates are measured on."),
    repeat: int = typer.Option(1, "--repeat", min=1, metavar="N", help="Run each case N times per candidate."),
    budget_usd: Optional[float] = typer.Option(None, "--budget-usd", metavar="USD", help="Try no more candidates once this much is spent."),
    apply: bool = typer.Option(False, "--apply", help="Write the winning change into the project's config/ (nothing is changed without it)."),
    model: Optional[str] = MODEL,
    base_url: Optional[str] = BASE_URL,
    quiet: bool = QUIET,
    json_out: bool = JSON,
) -> None:
    """Propose cheaper or better versions of a crew, measure each on the cases, and keep what holds its quality."""
    from mamabear.engine.services import Services
    from mamabear.evals.cases import load
    from mamabear.evals.edits import diff, write
    from mamabear.evals.tuner import Tuner, winner

    ws = Services(model=model, base_url=base_url, no_cache=True)
    cases = load(Path(cases_file))
    err = console(stderr=True)
    tuner = Tuner(
        ws,
        cases,
        crew,
        repeat,
        budget_usd,
        on_result=None if quiet else lambda r: err.print(f"[dim]{r.case} #{r.repeat}: {'passed' if r.passed else 'failed'}[/]"),
    )
    with library_chatter_off():
        found, past = tuner.run()
    best = winner(found)  # a kept candidate: it has an edit
    change = diff(best.edit, tuner.root) if best is not None and best.edit is not None else None
    if apply and best is not None and best.edit is not None:
        write(best.edit)
    if json_out:
        emit_json(
            {
                "crew": crew or cases.crew,
                "eval": cases.name,
                "spent_usd": round(tuner.spent, 6),
                "history": past,
                "candidates": [
                    {
                        "what": c.what,
                        "kept": c.kept,
                        "verdict": c.verdict,
                        **{k: c.figures.get(k) for k in ("pass_rate", "score", "cost_usd", "cost_per_pass_usd")},
                    }
                    for c in found
                ],
                "winner": {"what": best.what, "diff": change, "applied": apply} if best is not None else None,
            }
        )
        return
    rows = table("candidate", "pass rate", "score", "cost per pass", "cost", "verdict")
    for c in found:
        f = c.figures
        rows.add_row(c.what, _pct(f["pass_rate"]) if f else "-", _score(f.get("score")), _usd(f.get("cost_per_pass_usd")), _usd(f.get("cost_usd")), c.verdict)
    console().print(rows)
    if best is None:
        sys.stdout.write("no candidate held the baseline's quality at a lower cost; nothing to change.\n")
        return
    sys.stdout.write(f"\nwinner: {best.what}\n{change}")
    sys.stdout.write(f"written to {best.edit.path}\n" if apply and best.edit else "run again with --apply to write it.\n")
