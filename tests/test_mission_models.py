"""Missions against models that behave as real ones do: an answer that satisfies the schema and nothing more, an exact
loop, a loop whose arguments vary. Each ends as a mission should (a plan, a failed try fed back, stuck), never as a
crash, and the model server's own request log agrees with the run store's count."""

from __future__ import annotations

import json

import pytest

from mamabear.mission.runner import TEAM
from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER, create

GOAL = "leave a greeting in hello.txt"
ITEM = "Write the greeting file"


def bash(command: str) -> list[dict]:
    return [{"name": "bash", "arguments": {"command": command}}]


def test_a_model_that_answers_only_the_schema_gets_a_plan_of_the_team_made_without_tools(cli, fake, isolated):
    fake.add(schema=True)  # every request: the least its response_format allows ("{}" where there is none)
    result = cli("mission", GOAL, "--base-url", fake.url, "--max-steps", "12", "--json", "--quiet")
    doc = result.json()
    assert result.code == 5 and doc["status"] == "stuck", result.err  # it works on its plan until stuck, not refused at it
    plans = [r for r in fake.chat_requests if PLANNER in r["text"]]
    schema = plans[0]["body"]["response_format"]["json_schema"]["schema"]
    assert schema["$defs"]["PlanItem"]["properties"]["specialist"]["enum"] == list(TEAM)
    assert all("tools" not in r["body"] for r in plans)  # planning is a step without tools: it cannot write a file
    # The plan's item depends on itself (the schema cannot forbid it): told back once, then dropped, saying so.
    assert "depends on 'hello from the schema server', which is not an item" not in plans[1]["text"]
    assert "the items depend on each other in a cycle: hello from the schema server -> hello from the schema server" in plans[1]["text"]
    logs = cli("runs", "logs", doc["run_id"]).out
    assert "the plan was repaired: item 'hello from the schema server' depended on itself: the dependency was dropped" in logs
    tasks = [t["task"] for t in doc["tasks"]]
    assert tasks[:4] == ["plan v1", "plan v1", "hello from the schema server (try 1)", "hello from the schema server (try 2)"]
    assert len(fake.chat_requests) == doc["totals"]["llm_calls"]


def test_crewais_own_repeated_call_guard_is_a_failed_try_fed_back_not_a_failed_mission(cli, fake, isolated):
    """The same call with the same result 5 times, with other calls between (no rule of ours fires): CrewAI raises."""
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    for n in range(5):
        fake.add(task=ITEM, times=1, tool_calls=bash("cat hello.txt"))
        if n < 4:
            fake.add(task=ITEM, times=1, tool_calls=bash(f"echo step {n}"))
    fake.add(task=ITEM, times=1, tool_calls=create("hi\n"))
    fake.add(task=ITEM, times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    result = cli("mission", GOAL, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "hello (try 2)", "confirm the goal"]
    retry = [r for r in fake.chat_requests if ITEM in r["task"]][9]
    assert "did not pass its checks: " in retry["text"] and "with the same arguments 5 times" in retry["text"]
    assert len(fake.chat_requests) == doc["totals"]["llm_calls"]


def test_a_loop_with_varied_arguments_is_bounded_by_the_trys_tool_call_budget_and_ends_stuck(cli, fake, isolated):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(contains="The plan must change", times=1, text=json.dumps(HELLO_PLAN))
    for n in range(200):  # a new command every time: no two calls alike
        fake.add(task=ITEM, times=1, tool_calls=bash(f"echo attempt {n}"))
    result = cli("mission", GOAL, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 5, result.err
    doc = result.json()
    assert doc["status"] == "stuck" and "the try made 15 tool calls, its limit, without finishing" in doc["error"]
    assert [t["task"] for t in doc["tasks"]] == ["plan v1", "hello (try 1)", "hello (try 2)", "plan v2", "hello (try 1)", "hello (try 2)"]
    item_calls = [r for r in fake.chat_requests if ITEM in r["task"]]
    assert len(item_calls) == 4 * 15  # each try stops before its 16th model call (CrewAI's own limit is 25)
    assert len(fake.chat_requests) == doc["totals"]["llm_calls"]


def test_one_hard_item_does_not_starve_the_items_that_do_not_depend_on_it(cli, fake, isolated):
    """Item 'hard' never passes (its check output varies each time, as real test output does); 'b' and 'c' need nothing."""

    def item(id_: str, check: str) -> dict:
        criteria = [{"kind": "command", "check": check}]
        return {"id": id_, "title": f"Do {id_}", "specialist": "devops_specialist", "instructions": f"Make {id_}.", "criteria": criteria}

    plan = {"items": [item("hard", "echo run $$ took $RANDOM ms; false"), item("b", "test -f b.txt"), item("c", "test -f c.txt")]}
    fake.add(contains=PLANNER, times=1, text=json.dumps(plan))
    fake.add(contains="The plan must change", text=json.dumps({"items": [plan["items"][0]]}))
    for name in ("b", "c"):
        fake.add(task=f"Do {name}", times=1, tool_calls=[{"name": "file_create", "arguments": {"path": f"{name}.txt", "file_text": "ok\n"}}])
        fake.add(task=f"Do {name}", times=1, text=f"Wrote {name}.txt.")
    result = cli("mission", "make b, c and the hard one", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 5, result.err  # the same failure (its numbers aside), a re-plan, the same again: stuck
    doc = result.json()
    items = {i["id"]: i["status"] for i in doc["mission"]["items"]}
    assert items["b"] == "done" and items["c"] == "done" and items["hard"] != "done"
    tasks = [t["task"] for t in doc["tasks"]]
    assert tasks.index("b (try 1)") < tasks.index("plan v2")  # tried before the hard item was re-planned
    assert "failed the same way 2 times in a row" in doc["error"]
    assert len(fake.chat_requests) == doc["totals"]["llm_calls"]


@pytest.mark.memory_on
def test_with_memory_on_the_plan_is_still_structured_and_only_a_checked_result_is_remembered(cli, fake, isolated):
    """The default a user gets: memory on. Planning has no memory tools (they would cost the structured answer); a try
    that failed its checks leaves nothing in the shared memory; the item's checked result is there."""
    fake.add(contains="Return the analysis as structured output", schema=True)  # memory's own calls (its recall's analysis)
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task=ITEM, times=1, tool_calls=create("bye\n"))
    fake.add(task=ITEM, times=1, text="Wrote hello.txt saying bye, surely right.")  # the first try misses the criterion
    fake.add(task=ITEM, times=1, tool_calls=create("hi\n"))
    fake.add(task=ITEM, times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    result = cli("mission", GOAL, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    plan = next(r for r in fake.chat_requests if PLANNER in r["text"])
    assert "tools" not in plan["body"] and plan["body"]["response_format"]["type"] == "json_schema"
    remembered = " ".join(m["content"] for m in cli("memory", "list", "--json").json())
    assert "Wrote hello.txt with hi." in remembered and "checked: file `hello.txt` passed" in remembered
    assert "surely right" not in remembered  # the failed try's claim
