"""Missions end to end against the scripted model server: the commander plans, a specialist works in the sandbox, checks decide."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import killed_at, wait_for
from mamabear.engine.services import Services

PLANNER = "Make the plan that reaches this goal"
CONFIRM = "Every item of the plan is done"
HELLO_PLAN = {
    "items": [
        {
            "id": "hello",
            "title": "Write the greeting file",
            "specialist": "devops_specialist",
            "instructions": "Create hello.txt containing the word hi.",
            "criteria": [{"kind": "file", "check": "hello.txt"}, {"kind": "command", "check": "grep -q hi hello.txt"}],
        }
    ]
}


def create(text: str) -> list[dict]:
    return [{"name": "file_create", "arguments": {"path": "hello.txt", "file_text": text}}]


def greet_on_the_second_try(fake) -> None:  # noqa: ANN001 - the fake model server
    """The commander plans HELLO_PLAN; the specialist's first try misses the grep criterion, its second meets it."""
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", times=1, tool_calls=create("bye\n"))  # the first try misses the criterion
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt.")
    writes_the_greeting(fake)


def writes_the_greeting(fake) -> None:  # noqa: ANN001 - the fake model server
    """The specialist writes hello.txt with hi in one try; the commander confirms the goal."""
    fake.add(task="Write the greeting file", times=1, tool_calls=create("hi\n"))
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')


def test_a_mission_plans_works_checks_retries_with_the_failure_and_completes(cli, fake, isolated):
    greet_on_the_second_try(fake)
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["status"] == "completed" and doc["crew"] == "mission" and doc["inputs"] == {"goal": "leave a greeting in hello.txt"}
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "hello (try 2)", "confirm the goal"]
    assert [t["agent"] for t in doc["tasks"]] == ["scout_commander", "devops_specialist", "devops_specialist", "scout_commander"]
    retry = [r for r in fake.chat_requests if "Write the greeting file" in r["task"]][2]
    assert "did not pass its checks: command `grep -q hi hello.txt` failed: exit code 1" in retry["text"]
    work = Path(Services().sessions().get(doc["session_id"])["workdir"])
    assert (work / "hello.txt").read_text() == "hi\n"
    assert "- [x] **Write the greeting file**" in (work / "PLAN.md").read_text()
    assert "Met: every item is done and the goal is met." in doc["output"]
    kinds = [e["kind"] for e in cli("runs", "logs", doc["run_id"], "--json").json()]
    assert kinds.count("mission_plan") == 1 and kinds.count("mission_item_failed") == 1 and kinds.count("mission_item_done") == 1
    assert kinds.count("mission_state") == 1  # the saved state replaces the one before: the store grows with steps, not steps x plan


def test_a_planner_that_gives_no_usable_plan_is_asked_once_more_then_the_mission_fails_with_a_sentence(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text="I would start by looking around.")
    fake.add(contains=PLANNER, times=1, text=json.dumps({"items": [{**HELLO_PLAN["items"][0], "specialist": "chef"}]}))
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 1
    doc = result.json()
    assert doc["status"] == "failed" and "the planner gave no usable plan in 2 answers" in doc["error"] and "'chef'" in doc["error"]
    second = [r for r in fake.chat_requests if PLANNER in r["text"]][1]
    assert "could not be used: the plan is not JSON" in second["text"]


def test_a_mission_stopped_by_its_budget_resumes_without_repeating_a_completed_step(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    writes_the_greeting(fake)
    stopped = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--budget-tokens", "1500", "--json", "--quiet")
    assert stopped.code == 3, stopped.err  # the plan (1,315 tokens) and the item's first call fit; its second call does not
    run_id = stopped.json()["run_id"]
    asked = len(fake.chat_requests)
    resumed = cli("resume", run_id, "--budget-tokens", "100000", "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert doc["status"] == "completed"
    again = fake.chat_requests[asked:]
    assert not [r for r in again if PLANNER in r["text"]]  # the completed planning step was not repeated
    assert [t["task"] for t in doc["tasks"]][0] == "plan v1" and [t["task"] for t in doc["tasks"]][-1] == "confirm the goal"
    assert [t["status"] for t in doc["tasks"]].count("completed") == len(doc["tasks"]) - 1  # the step cut short stays as it was


def test_a_mission_that_fails_the_same_way_is_re_planned_then_stopped_as_stuck(cli, fake, isolated):
    """The specialist never writes the file (the server's default answer): the same failure, a re-plan, the same failure."""
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(contains="The plan must change", times=1, text=json.dumps(HELLO_PLAN))
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 5, result.err
    doc = result.json()
    assert doc["status"] == "stuck" and "item 'hello' failed the same way 2 times in a row" in doc["error"] and "again after a re-plan" in doc["error"]
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "hello (try 2)", "plan v2", "hello (try 1)", "hello (try 2)"]
    # plan v2's first try asks what plan v1's asked: the model is asked again, not the cache (its answer did not do)
    assert doc["totals"]["cache_hits"] == 0 and len(fake.chat_requests) == doc["totals"]["llm_calls"]
    replan = next(r for r in fake.chat_requests if "The plan must change" in r["text"])
    assert "stuck: item 'hello' failed the same way 2 times in a row (file `hello.txt` failed: hello.txt does not exist" in replan["text"]


def test_a_judged_criterion_goes_to_the_judge_with_the_evidence(cli, fake, isolated):
    judged = {
        "items": [{**HELLO_PLAN["items"][0], "criteria": [{"kind": "file", "check": "hello.txt"}, {"kind": "judge", "check": "the greeting is friendly"}]}]
    }
    fake.add(contains=PLANNER, times=1, text=json.dumps(judged))
    fake.add(task="Write the greeting file", times=1, tool_calls=create("hi there\n"))
    fake.add(task="Write the greeting file", times=1, text="Wrote a friendly hello.txt.")
    fake.add(contains="Decide from the evidence", times=1, text='{"passed": true, "reason": "it says hi there"}')
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "done"}')
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert [(t["task"], t["agent"]) for t in doc["tasks"]][1:3] == [("hello (try 1)", "devops_specialist"), ("judge hello", "model_coordinator")]
    judge = next(r for r in fake.chat_requests if "Decide from the evidence" in r["text"])
    assert "- the greeting is friendly" in judge["text"] and "file `hello.txt` passed: it exists" in judge["text"]
    assert "judged: it says hi there" in doc["output"]


def killed_in_the_greeting_then_resumed(cli, fake, isolated):  # noqa: ANN001, ANN201 - the fixtures; (run id, the resume's Result)
    """The mission is SIGKILLed once the greeting item's first call reaches the server (a rule makes it hang), then resumed."""
    killed_at(fake, isolated, "Write the greeting file", "mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--quiet", "--json")
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    return run_id, resumed


def test_a_mission_killed_in_the_middle_of_a_step_resumes_with_no_completed_step_repeated(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", times=1, delay=60, text="never seen")  # the item's first call hangs: SIGKILL then
    writes_the_greeting(fake)
    run_id, resumed = killed_in_the_greeting_then_resumed(cli, fake, isolated)
    planning = [r for r in fake.chat_requests if PLANNER in r["text"]]
    assert len(planning) == 1  # the planning step completed before the kill: its call is not made again
    doc = resumed.json()
    assert doc["status"] == "completed" and [a["kind"] for a in doc["attempts"]] == ["run", "resume"]
    assert [t["status"] for t in doc["tasks"]][:2] == ["completed", "interrupted"]  # the step cut short, then done again


def test_a_detached_mission_is_followed_and_cancelled_like_a_run(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", delay=60, text="never seen")  # the item's calls hang until the cancel
    started = cli("mission", "--detach", "--json", "--base-url", fake.url, "--", "- a goal that starts with a dash")
    assert started.code == 0, started.err
    run_id = started.json()["run_id"]
    wait_for(lambda: [r for r in fake.chat_requests if "Write the greeting file" in r["task"]], what="the item's first call")
    assert cli("runs", "show", run_id, "--json").json()["inputs"] == {"goal": "- a goal that starts with a dash"}
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled", cancelled.out
    logs = cli("runs", "logs", run_id, "--follow").out  # returns: the run has ended
    assert "plan v1: 1 item (hello)" in logs and "was cancelled" in logs


def test_a_step_that_repeats_one_tool_call_is_a_failure_fed_back_as_a_loop(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", times=1, tool_calls=create("hi\n"))
    fake.add(task="Write the greeting file", times=3, tool_calls=[{"name": "bash", "arguments": {"command": "cat hello.txt"}}])  # the same call, thrice
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    assert [t["task"] for t in result.json()["tasks"]] == ["plan v1", "hello (try 1)", "hello (try 2)", "confirm the goal"]
    item = [r for r in fake.chat_requests if "Write the greeting file" in r["task"]]
    assert len(item) == 5  # the try is stopped at the 3rd identical result: the model is not asked a 5th time in it
    assert 'the same tool call was made 3 times in a row, with the same result: bash {"command": "cat hello.txt"}' in item[-1]["text"]


def test_edit_then_test_again_is_progress_not_a_loop(cli, fake, isolated):
    """The same test command run after each edit gives another result each time: the try goes on, and passes."""
    check = [{"name": "bash", "arguments": {"command": "cat hello.txt"}}]
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    for text in ("bye\n", "hey\n", "hi\n"):  # edit, test, edit, test, edit, test
        fake.add(task="Write the greeting file", times=1, tool_calls=create(text))
        fake.add(task="Write the greeting file", times=1, tool_calls=check)
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "confirm the goal"]
    assert sum(1 for r in fake.chat_requests if "the same tool call" in r["text"]) == 0


def test_the_mission_report_gives_the_evidence_the_files_and_the_cost_by_specialist(cli, fake, isolated):
    greet_on_the_second_try(fake)
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--quiet")
    assert result.code == 0, result.err
    report = result.out
    assert report.startswith("Mission: leave a greeting in hello.txt\nStatus: completed: every item is done and the goal is met (4 steps of 200, 0 re-plans)")
    assert "  [x] hello: Write the greeting file (devops_specialist, 2 tries)\n      file `hello.txt` passed: it exists\n" in report
    assert "      command `grep -q hi hello.txt` passed: exit code 0\n" in report
    assert "Files in the workspace (2):\n  PLAN.md\n  hello.txt\n" in report
    assert re.search(r"Cost by specialist:\n  (devops_specialist|scout_commander): \d+ calls", report) and "  scout_commander: 2 calls" in report
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    mission = cli("runs", "show", run_id, "--json").json()["mission"]
    tries = mission["items"][0]["tries"]
    assert [(t["try"], t["passed"], t["task_position"]) for t in tries] == [(1, False, 2), (2, True, 3)]
    assert tries[0]["feedback"] == "command `grep -q hi hello.txt` failed: exit code 1"
    assert [p["version"] for p in mission["plans"]] == [1] and mission["given_up"] == []
    shown = cli("runs", "show", run_id).out
    assert "plan versions" in shown and "mission items" in shown and "command `grep -q hi hello.txt` failed: exit code 1" in shown


def test_an_item_that_keeps_failing_is_re_planned_away_and_the_report_says_it_was_given_up(cli, fake, isolated):
    Path("config").mkdir()
    Path("config/missions.yaml").write_text("item_retries: 1\nstuck:\n  same_failure: 5\n")
    fetch = {"id": "fetch", "title": "Fetch the data", "specialist": "research_specialist", "instructions": "Save data.txt."}
    fake.add(contains=PLANNER, times=1, text=json.dumps({"items": [{**fetch, "criteria": [{"kind": "file", "check": "data.txt"}]}]}))
    fake.add(contains="The plan must change", times=1, text=json.dumps(HELLO_PLAN))  # the research cannot be done: greet instead
    writes_the_greeting(fake)
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "fetch (try 1)", "fetch (try 2)", "plan v2", "hello (try 1)", "confirm the goal"]
    replan = next(r for r in fake.chat_requests if "The plan must change" in r["text"])
    assert "item 'fetch' failed 2 times (last: file `data.txt` failed: data.txt does not exist" in replan["text"]
    mission = doc["mission"]
    assert [p["version"] for p in mission["plans"]] == [1, 2] and mission["replans"] == 1
    assert {i["id"]: i["status"] for i in mission["items"]} == {"fetch": "dropped", "hello": "done"}
    (given_up,) = mission["given_up"]
    assert given_up["item"] == "fetch" and given_up["why"].startswith("failed its checks (file `data.txt` failed: data.txt does not exist")
    assert given_up["why"].endswith("then left out of plan v2")


def test_a_mission_killed_after_a_re_plan_resumes_on_the_second_plan_without_asking_for_it_again(cli, fake, isolated):
    Path("config").mkdir()
    Path("config/missions.yaml").write_text("item_retries: 1\nstuck:\n  same_failure: 5\n")
    fetch = {"id": "fetch", "title": "Fetch the data", "specialist": "research_specialist", "instructions": "Save data.txt."}
    fake.add(contains=PLANNER, times=1, text=json.dumps({"items": [{**fetch, "criteria": [{"kind": "file", "check": "data.txt"}]}]}))
    later = {"items": [{**HELLO_PLAN["items"][0], "depends_on": []}]}
    fake.add(contains="The plan must change", times=1, text=json.dumps(later))
    fake.add(task="Write the greeting file", times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    writes_the_greeting(fake)
    run_id, resumed = killed_in_the_greeting_then_resumed(cli, fake, isolated)
    assert len([r for r in fake.chat_requests if PLANNER in r["text"] or "The plan must change" in r["text"]]) == 2  # no plan asked again
    mission = resumed.json()["mission"]
    assert [p["version"] for p in mission["plans"]] == [1, 2] and {i["id"]: i["status"] for i in mission["items"]} == {"fetch": "dropped", "hello": "done"}
    logs = [e["message"] for e in cli("runs", "logs", run_id, "--json").json()]
    assert "mission resumed after step 4 on plan v2" in logs
