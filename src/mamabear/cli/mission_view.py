"""Showing a mission: its checklist live, the review of its first plan, and its report (after the run and in `runs show`)."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from mamabear.cli.output import table
from mamabear.mission.state import MissionState
from mamabear.observe import Event, RunState

MARKS = {"pending": "[ ]", "running": "[~]", "done": "[x]", "failed": "[!]", "dropped": "[-]"}
STYLES = {"running": "cyan", "done": "green", "failed": "red", "dropped": "dim"}


def with_mission(store: Any, report: dict[str, Any]) -> dict[str, Any]:
    """The run's report, with its mission report when the run is a mission."""
    if report.get("process") == "mission":
        from mamabear.mission.report import mission_report

        report["mission"] = mission_report(store, report["run_id"])
    return report


# ---------------------------------------------------------------- the live checklist


class Checklist:
    """The plan's items and how each stands, from the mission's events, for the live view."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.states: dict[str, str] = {}
        self.version = 0
        self.steps = 0
        self.max_steps: int | None = None

    def heard(self, event: Event) -> None:
        data = event.data or {}
        if event.kind in ("mission_plan", "mission_resumed"):
            self.items, self.version = data["plan"]["items"], data.get("version", self.version + 1)
            self.states = {item["id"]: self.states.get(item["id"], "pending") for item in self.items}
            if "course" in data:
                self._course(MissionState.read({"course": data["course"], "max_steps": self.max_steps}))
        elif event.kind == "mission_item_started":
            self.states[data["item"]] = "running"
        elif event.kind == "mission_state":
            self._course(MissionState.read(data))

    def _course(self, state: MissionState | None) -> None:
        if state is not None:
            self.steps, self.max_steps, self.states = state.course.steps, state.max_steps, state.item_states()

    def render(self, state: RunState) -> Any:
        steps = f"step {self.steps}" + (f" of {self.max_steps}" if self.max_steps else "")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(Text(f"plan v{self.version}  {steps}  ${state.cost_usd:.4f}", style="bold"))
        for item in self.items:
            status = self.states.get(item["id"], "pending")
            line = Text.assemble((MARKS[status], STYLES.get(status, "")), " ", item["title"], (f"  {item['specialist']} · {status}", "dim"))
            grid.add_row(line)
        return grid


# ---------------------------------------------------------------- the review of the first plan


class TerminalReview:
    """Shows a plan version on the terminal and asks: go, edit (``$VISUAL``/``$EDITOR`` on its YAML) or abort."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.pause: Callable[[], Any] | None = None  # the live view's pause, set once it exists

    def __call__(self, plan: Any, problems_of: Callable[[Any], list[str]]) -> Any:
        from contextlib import nullcontext

        with self.pause() if self.pause else nullcontext():
            return self._ask(plan, problems_of)

    def _ask(self, plan: Any, problems_of: Callable[[Any], list[str]]) -> Any:
        from rich.prompt import Prompt

        shown = plan
        while True:
            self.console.print(plan_table(shown, "the plan" if shown is plan else "the plan as edited"))
            try:
                answer = Prompt.ask("go, edit or abort", choices=["go", "edit", "abort"], default="go", console=self.console)
            except EOFError:  # the terminal closed its input: nothing was agreed to
                return None
            if answer == "abort":
                return None
            if answer == "go":
                return shown
            edited, why = self._edit(shown)
            found = [why] if why else problems_of(edited)
            if found:
                self.console.print(Text("the edited plan cannot be used: " + "; ".join(found), style="red"))
                continue
            shown = edited

    def _edit(self, plan: Any) -> tuple[Any, str | None]:
        """The plan after the editor, and why it is not a plan (None when it is)."""
        import yaml
        from pydantic import ValidationError

        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.TemporaryDirectory(prefix="mamabear-plan-") as tmp:
            path = Path(tmp) / "plan.yaml"
            path.write_text(yaml.safe_dump(plan.model_dump(), sort_keys=False, allow_unicode=True))
            try:
                subprocess.run([*shlex.split(editor), str(path)], check=False)
            except OSError as exc:
                return plan, f"the editor {editor!r} could not be started ({exc.strerror})"
            try:
                return type(plan).model_validate(yaml.safe_load(path.read_text())), None
            except yaml.YAMLError as exc:
                return plan, f"it is not YAML ({str(exc).splitlines()[0]})"
            except ValidationError as exc:
                first = exc.errors()[0]
                return plan, f"it does not fit the plan's schema ({'.'.join(str(p) for p in first['loc'])}: {first['msg']})"


def plan_table(plan: Any, title: str) -> Any:
    rows = table("#", "item", "title", "specialist", "after", "criteria", title=title)
    for n, item in enumerate(plan.items, start=1):
        criteria = "\n".join(f"{c.kind}: {c.check}" for c in item.criteria)
        rows.add_row(str(n), Text(item.id), Text(item.title), Text(item.specialist), Text(", ".join(item.depends_on) or "-"), Text(criteria))
    return rows


# ---------------------------------------------------------------- the report


def report_text(doc: dict[str, Any]) -> str:
    """The mission report as plain lines: what was achieved, the evidence per item, what was given up, the files, the cost."""
    m = doc["mission"]
    steps = f"{m['steps']} steps" + (f" of {m['max_steps']}" if m["max_steps"] else "") + f", {m['replans']} re-plans"
    lines = [f"Mission: {m['goal']}", f"Status: {m['status']}: {m['achieved']} ({steps})", "", "Items:"]
    for item in m["items"]:
        tries = len(item["tries"])
        lines.append(f"  {MARKS[item['status']]} {item['id']}: {item['title']} ({item['specialist']}, {tries} tr{'y' if tries == 1 else 'ies'})")
        last = item["tries"][-1] if item["tries"] else None
        lines += [f"      {v}" for v in (last["verdicts"] if last else [])]
    if m["given_up"]:
        lines += ["", "Given up:"] + [f"  - {g['item']}: {g['why']}" for g in m["given_up"]]
    if m["files"] is not None:
        count = f"the first {len(m['files'])}" if m["files_cut"] else str(len(m["files"]))
        lines += ["", f"Files in the workspace ({count}):"] + [f"  {f}" for f in m["files"]]
    lines += ["", "Cost by specialist:"]
    for c in m["cost_by_specialist"]:
        lines.append(f"  {c['specialist'] or '-'}: {c['llm_calls']} calls, {c['tokens_in']:,}/{c['tokens_out']:,} tokens, ${c['cost_usd']:.4f}")
    lines.append(f"  total: ${doc['totals']['cost_usd']:.4f}")
    return "\n".join(lines) + "\n"


def print_tables(out: Any, m: dict[str, Any]) -> None:
    """`runs show` of a mission: its plan versions, then each item's tries and verdicts."""
    from mamabear.cli.output import when

    versions = table("version", "made", "items", title="plan versions")
    for p in m["plans"]:
        versions.add_row(f"v{p['version']}" + (" (edited)" if p["edited"] else ""), when(p["ts"]), Text(", ".join(i["id"] for i in p["items"])))
    out.print(versions)
    tries = table("item", "specialist", "status", "try", "task", "verdict", title="mission items")
    for item in m["items"]:
        for t in item["tries"] or [{"try": "-", "task_position": None, "passed": None, "verdicts": []}]:
            verdict = "passed" if t["passed"] else t.get("feedback") or "-"
            tries.add_row(Text(item["id"]), Text(item["specialist"]), item["status"], str(t["try"]), str(t["task_position"] or "-"), Text(str(verdict)[:100]))
    out.print(tries)
