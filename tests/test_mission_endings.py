"""Every ending of a mission can be carried on: stuck, out of steps, no usable plan. `resume ID` continues it with new
limits where given; the items done stay done, the others get their tries afresh, and the log says so."""

from __future__ import annotations

import json

from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER, writes_the_greeting

GOAL = "leave a greeting in hello.txt"
ITEM = "Write the greeting file"


def test_a_stuck_mission_is_carried_on_by_resume_once_the_cause_is_fixed(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(contains="The plan must change", times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task=ITEM, times=4, text="I could not do it.")  # never writes the file: stuck after a re-plan
    stuck = cli("mission", GOAL, "--base-url", fake.url, "--json", "--quiet")
    assert stuck.code == 5, stuck.err
    run_id = stuck.json()["run_id"]
    assert f"carry it on with `mamabear resume {run_id}` once the cause is fixed" in stuck.err
    asked = len(fake.chat_requests)
    writes_the_greeting(fake)  # the cause fixed (here: the model now does the work)
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert doc["status"] == "completed"
    assert [t["task"] for t in doc["tasks"]][-2:] == ["hello (try 1)", "confirm the goal"]  # its tries start afresh
    again = fake.chat_requests[asked:]
    assert not [r for r in again if PLANNER in r["text"]]  # carried on with its plan: not planned again
    assert len(again) == 3 and len(fake.chat_requests) == doc["totals"]["llm_calls"]
    logs = cli("runs", "logs", run_id).out
    assert "mission carried on after it ended stuck (item 'hello' failed the same way 2 times in a row" in logs
    assert "the others' tries and the re-plans start afresh" in logs and "(attempt 2, 6 steps done" in logs


def test_a_mission_out_of_steps_is_carried_on_with_more_steps(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    writes_the_greeting(fake)
    ended = cli("mission", GOAL, "--base-url", fake.url, "--max-steps", "2", "--json", "--quiet")
    assert ended.code == 1 and "reached its limit of 2 steps" in ended.json()["error"], ended.err
    run_id = ended.json()["run_id"]
    resumed = cli("resume", run_id, "--max-steps", "1", "--json", "--quiet")
    assert resumed.code == 0, resumed.err  # the confirmation was the one step it lacked
    doc = resumed.json()
    assert doc["status"] == "completed" and doc["mission"]["max_steps"] == 3
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "confirm the goal"]
    assert len(fake.chat_requests) == doc["totals"]["llm_calls"]
    assert "mission carried on after it ended failed (reached its limit of 2 steps before the goal was met)" in cli("runs", "logs", run_id).out


def test_a_mission_with_no_usable_plan_is_carried_on_by_asking_the_planner_again(cli, fake, isolated):
    fake.add(contains=PLANNER, times=2, text="I would start by looking around.")
    ended = cli("mission", GOAL, "--base-url", fake.url, "--json", "--quiet")
    assert ended.code == 1 and "the planner gave no usable plan in 2 answers" in ended.json()["error"], ended.err
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    writes_the_greeting(fake)
    resumed = cli("resume", ended.json()["run_id"], "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "plan v1", "plan v1", "hello (try 1)", "confirm the goal"]
    told = [r for r in fake.chat_requests if PLANNER in r["text"]][-1]
    assert "could not be used: the plan is not JSON" in told["text"]  # what was wrong is told to it again


def test_max_steps_on_the_resume_of_a_crew_run_is_refused_with_a_sentence(cli, fake, isolated):
    ran = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--budget-tokens", "10", "--json", "--quiet")
    assert ran.code == 3, ran.err
    refused = cli("resume", ran.json()["run_id"], "--max-steps", "5")
    assert refused.code == 2 and "--max-steps is for missions" in refused.err and "Traceback" not in refused.err


def test_a_carried_on_mission_gives_a_dependent_item_the_real_value_of_a_secret_in_a_result(cli, fake, isolated, monkeypatch):
    secret = "tok-7a6b5c4d3e2f1a0b9c8d"
    monkeypatch.setenv("ACME_API_TOKEN", secret)

    def item(id_: str, after: list[str]) -> dict:
        return {"id": id_, "title": f"Do {id_}", "specialist": "devops_specialist", "instructions": f"Make {id_}.", "depends_on": after,
                "criteria": [{"kind": "file", "check": "PLAN.md"}]}  # fmt: skip

    fake.add(contains=PLANNER, times=1, text=json.dumps({"items": [item("a", []), item("b", ["a"])]}))
    fake.add(task="Do a", times=1, text=f"Made a; the deploy token is {secret}.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "both are made"}')
    ended = cli("mission", "make a then b", "--base-url", fake.url, "--max-steps", "2", "--json", "--quiet")
    assert ended.code == 1 and "reached its limit of 2 steps" in ended.json()["error"], ended.err
    resumed = cli("resume", ended.json()["run_id"], "--max-steps", "5", "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    b = [r["text"] for r in fake.chat_requests if "Do b" in r["task"]]
    assert b and f"the deploy token is {secret}" in b[0] and "[REDACTED]" not in b[0]
