"""A mission's plan and settings: what the planner's answer must be, what makes it unusable, its order and PLAN.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mamabear.mission.config import MissionConfig
from mamabear.mission.plan import MissionPlan, PlanError, markdown, order, problems, read

SPECIALISTS = {"research_specialist", "devops_specialist", "scout_commander", "model_coordinator"}


def item(id_: str, specialist: str = "devops_specialist", depends_on: list[str] | None = None, criteria: list[dict] | None = None) -> dict:
    return {
        "id": id_,
        "title": f"do {id_}",
        "specialist": specialist,
        "instructions": f"make {id_} happen",
        "depends_on": depends_on or [],
        "criteria": [{"kind": "command", "check": f"test -f {id_}.txt"}] if criteria is None else criteria,
    }


def test_a_planners_answer_is_read_bare_or_fenced_and_ordered_by_its_dependencies():
    answer = {"items": [item("report", "research_specialist", ["code", "data"]), item("code"), item("data", depends_on=["code"])]}
    for text in (json.dumps(answer), f"Here is the plan:\n```json\n{json.dumps(answer, indent=2)}\n```\nGood luck."):
        plan = read(text)
        assert problems(plan, SPECIALISTS) == []
        assert [i.id for i in order(plan)] == ["code", "data", "report"]


def test_what_is_not_a_plan_is_one_sentence():
    with pytest.raises(PlanError, match="not JSON"):
        read("I will first look around, then decide.")
    with pytest.raises(PlanError, match=r"items\.0\.criteria\.0\.kind"):
        read(json.dumps({"items": [item("a", criteria=[{"kind": "vibes", "check": "it feels done"}])]}))


def test_every_problem_of_a_plan_is_named():
    plan = MissionPlan.model_validate(
        {
            "items": [
                item("a", depends_on=["c"]),
                item("b", "chef", depends_on=["a", "ghost"]),
                item("c", depends_on=["b"]),
                item("c"),
                item("d", criteria=[]),
            ]
        }
    )
    found = problems(plan, SPECIALISTS)
    assert "item id 'c' is used 2 times" in found
    assert any("specialist 'chef', which is not one of" in p for p in found)
    assert "item 'b' depends on 'ghost', which is not an item of the plan" in found
    assert any(p.startswith("item 'd' has no criteria") for p in found)
    assert "the items depend on each other in a cycle: a -> c -> b -> a" in found
    assert problems(MissionPlan(items=[]), SPECIALISTS) == ["the plan has no items"]
    assert problems(MissionPlan.model_validate({"items": [item("self", depends_on=["self"])]}), SPECIALISTS) == [
        "the items depend on each other in a cycle: self -> self"
    ]


def test_plan_md_is_a_checklist_of_the_ordered_items():
    plan = read(json.dumps({"items": [item("tests", depends_on=["cli"]), item("cli", criteria=[{"kind": "judge", "check": "the CLI converts CSV to JSON"}])]}))
    text = markdown("a CSV to JSON tool", plan, {"cli": "done", "tests": "running"}, version=2)
    assert text.splitlines()[:3] == ["# Mission plan (version 2)", "", "Goal: a CSV to JSON tool"]
    assert "- [x] **do cli** (`cli`, devops_specialist)\n  - judged: the CLI converts CSV to JSON" in text
    assert "- [~] **do tests** (`tests`, devops_specialist, after cli)\n  - command: `test -f tests.txt`" in text


def test_missions_yaml_is_checked_with_file_and_line(cli, isolated, tmp_path, monkeypatch):
    assert MissionConfig.load([Path(__file__).resolve().parents[1]]).planner == "scout_commander"
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    missions = project / "config" / "missions.yaml"
    missions.write_text("judge: model_coordinator\nitem_retries: -1\n")
    result = cli("validate")
    assert result.code == 2 and "missions.yaml:2" in result.err and "'item_retries' must be a whole number of at least 0" in result.err
    missions.write_text("stuck:\n  same_failure: 2\n  loops: 4\n")
    result = cli("validate")
    assert result.code == 2 and "missions.yaml:3" in result.err and "unknown field 'loops' in stuck" in result.err
    missions.write_text("replans: 1\njudge: chef\n")
    result = cli("validate")
    assert result.code == 2 and "missions.yaml:2: judge 'chef' is not an agent" in result.err
    result = cli("mission", "leave a greeting")  # refused before the run starts, at the same place
    assert result.code == 2 and "missions.yaml:2: judge 'chef' is not an agent" in result.err and cli("runs", "list", "--json").json() == []
    (project / "cases.yaml").write_text("cases:\n  - name: greet\n    mission: leave a greeting\n    checks: [{contains: hello}]\n")
    result = cli("eval", "--cases", str(project / "cases.yaml"))  # an eval's mission case is started as `mission` is
    assert result.code == 2 and "missions.yaml:2: judge 'chef' is not an agent" in result.err and cli("runs", "list", "--json").json() == []
    missions.write_text("replans: 1\nstuck:\n  steps_without_progress: 4\n")
    assert cli("validate").code == 0
    loaded = MissionConfig.load([Path(__file__).resolve().parents[1], project])
    assert (loaded.replans, loaded.stuck.steps_without_progress, loaded.stuck.same_failure, loaded.max_steps) == (1, 4, 2, 200)
