"""What each mission step asks (bounded, with what it needs), and how verdicts are read: never a pass by accident."""

from __future__ import annotations

from mamabear.mission.plan import MissionPlan
from mamabear.mission.prompts import Judgement, Specialist, confirm_task, item_task, judge_task, plan_task, read_judgement, replan_task

TEAM = [Specialist("devops_specialist", "DevOps Specialist", "Run things."), Specialist("research_specialist", "Research Specialist", "Find things.")]
PLAN = MissionPlan.model_validate(
    {
        "items": [
            {"id": "code", "title": "Write the converter", "specialist": "devops_specialist", "instructions": "Write convert.py.",
             "criteria": [{"kind": "file", "check": "convert.py"}]},
            {"id": "tests", "title": "Test it", "specialist": "devops_specialist", "instructions": "Write tests.", "depends_on": ["code"],
             "criteria": [{"kind": "command", "check": "python3 -m pytest -q"}, {"kind": "judge", "check": "the tests cover bad input"}]},
        ]
    }
)  # fmt: skip


def test_the_planner_is_told_the_team_and_what_was_wrong_while_the_schema_goes_with_the_request():
    description, expected = plan_task("a CSV to JSON tool", TEAM, ("item 'a' names specialist 'chef'",))
    assert "- devops_specialist: DevOps Specialist. Run things." in description and "Goal: a CSV to JSON tool" in description
    assert "could not be used: item 'a' names specialist 'chef'" in description
    assert "JSON object of the schema given" in expected and "$defs" not in expected + description
    description, _ = replan_task("g", TEAM, PLAN, {"code": "wrote convert.py" + "x" * 5000}, "item 'tests' failed 3 times")
    assert "The plan must change: item 'tests' failed 3 times." in description and "- tests: Test it" in description
    assert len(description) < 2500  # results are cut: a re-plan's prompt does not grow with what was done


def test_an_item_gets_its_dependencies_results_its_criteria_and_the_last_failure():
    description, _ = item_task(PLAN.items[1], {"code": "convert.py reads stdin" + "y" * 9000}, feedback="command `python3 -m pytest -q` failed: exit code 1")
    assert "Result of 'code':\nconvert.py reads stdin" in description and description.count("y") <= 1500
    assert "- command: python3 -m pytest -q\n- judge: the tests cover bad input" in description
    assert "did not pass its checks: command `python3 -m pytest -q` failed: exit code 1" in description
    assert "did not pass" not in item_task(PLAN.items[0], {})[0]


def test_verdicts_are_read_strictly_and_anything_else_is_a_fail_that_says_why():
    assert read_judgement('Looks right.\n{"passed": true, "reason": "tests cover empty and bad rows"}') == Judgement(True, "tests cover empty and bad rows")
    assert read_judgement('{"passed": false}') == Judgement(False, "no reason given")
    assert read_judgement("Yes, it passes.").passed is False
    assert read_judgement('{"passed": "yes"}').reason.startswith("the judge's answer was not a verdict")
    description, _ = judge_task(PLAN.items[1], ["the tests cover bad input"], "z" * 9000)
    assert "- the tests cover bad input" in description and description.count("z") == 4000
    assert "- code: wrote it" in confirm_task("g", {"code": "wrote it"})[0]
