"""The course of a mission, decided step by step: retries with feedback, re-plans, stuck, limits, and its checkpoint."""

from __future__ import annotations

import json

from mamabear.mission.config import MissionConfig, StuckLimits
from mamabear.mission.course import Confirm, Course, Finish, MakePlan, Replan, RunItem
from mamabear.mission.plan import MissionPlan

CONFIG = MissionConfig()


def plan(*ids: str, chain: bool = True) -> MissionPlan:
    items = []
    for n, id_ in enumerate(ids):
        depends = [ids[n - 1]] if chain and n else []
        items.append({"id": id_, "title": id_, "specialist": "devops_specialist", "instructions": f"make {id_}", "depends_on": depends,
                      "criteria": [{"kind": "command", "check": f"test -f {id_}"}]})  # fmt: skip
    return MissionPlan.model_validate({"items": items})


def test_a_simple_mission_plans_runs_each_item_in_order_then_confirms_the_goal():
    course = Course("two files", CONFIG)
    assert course.next() == MakePlan()
    course.planned(plan("a", "b"), [])
    first = course.next()
    assert isinstance(first, RunItem) and (first.item.id, first.attempt, first.feedback) == ("a", 1, None)
    course.item_done("a")
    assert isinstance(course.next(), RunItem) and course.next().item.id == "b"
    course.item_done("b")
    assert course.next() == Confirm()
    course.confirmation(True, "a and b exist")
    assert course.next() == Finish("completed", "every item is done and the goal is met")
    assert (course.steps, course.version, course.replans) == (4, 1, 0)


def test_an_unusable_plan_is_asked_again_once_with_what_was_wrong_then_the_mission_fails():
    course = Course("g", CONFIG)
    course.planned(plan("a"), ["item 'a' names specialist 'chef'"])
    assert course.next() == MakePlan(("item 'a' names specialist 'chef'",))
    course.unusable_answer("the plan is not JSON (Expecting value at character 0)")
    finish = course.next()
    assert isinstance(finish, Finish) and finish.status == "failed" and "no usable plan in 2 answers: the plan is not JSON" in finish.reason
    again = Course("g", CONFIG)
    again.unusable_answer("the plan is not JSON")
    again.planned(plan("a"), [])
    assert isinstance(again.next(), RunItem)


def test_a_failed_item_is_tried_again_with_its_failure_fed_back():
    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    course.item_failed("a", "`test -f a` exited 1")
    retry = course.next()
    assert isinstance(retry, RunItem) and (retry.attempt, retry.feedback) == (2, "`test -f a` exited 1")
    course.item_done("a")
    assert course.next() == Confirm()


def test_an_item_out_of_tries_is_re_planned_and_what_is_done_stays_done():
    course = Course("g", MissionConfig(item_retries=1))
    course.planned(plan("a", "b"), [])
    course.item_done("a")
    course.item_failed("b", "reason one")
    course.item_failed("b", "reason two")
    replan = course.next()
    assert replan == Replan("item 'b' failed 2 times (last: reason two)")
    course.planned(plan("a", "b2"), [])
    assert course.items["a"].status == "done" and course.replans == 1 and course.version == 2
    assert isinstance(course.next(), RunItem) and course.next().item.id == "b2"


def test_the_same_failure_twice_is_a_re_plan_then_a_stop_as_stuck():
    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    course.item_failed("a", "pytest: 3 failed")
    course.item_failed("a", "pytest: 3 failed")
    replan = course.next()
    assert isinstance(replan, Replan) and replan.reason == "stuck: item 'a' failed the same way 2 times in a row (pytest: 3 failed)"
    course.planned(plan("a"), [])
    course.item_failed("a", "pytest: 3 failed")
    course.item_failed("a", "pytest: 3 failed")
    stop = course.next()
    assert stop == Finish("stuck", "item 'a' failed the same way 2 times in a row (pytest: 3 failed), again after a re-plan")


def test_no_progress_in_n_steps_is_stuck():
    course = Course("g", MissionConfig(item_retries=99, stuck=StuckLimits(same_failure=9, same_tool_call=3, steps_without_progress=3)))
    course.planned(plan("a"), [])
    for n in range(3):
        course.item_failed("a", f"failure {n}")
    assert course.next() == Replan("stuck: no item was done in 3 steps")


def test_limits_of_steps_and_re_plans_end_the_mission_with_a_sentence():
    course = Course("g", MissionConfig(max_steps=2))
    course.planned(plan("a", "b"), [])
    course.item_done("a")
    assert course.next() == Finish("failed", "reached its limit of 2 steps before the goal was met")
    course = Course("g", MissionConfig(replans=0, item_retries=0))
    course.planned(plan("a"), [])
    course.item_failed("a", "no")
    assert course.next() == Finish("failed", "item 'a' failed 1 times (last: no); the plan was remade 0 times already")


def test_a_goal_not_met_at_the_end_is_re_planned():
    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    course.item_done("a")
    course.confirmation(False, "the README is missing")
    assert course.next() == Replan("the goal is not met yet: the README is missing")


def test_the_course_resumes_from_its_checkpoint_and_its_size_does_not_grow_with_steps():
    course = Course("g", MissionConfig(max_steps=10_000, item_retries=10_000, stuck=StuckLimits(same_failure=10_000, steps_without_progress=10_000)))
    course.planned(plan("a", "b", "c"), [])
    course.item_done("a")
    course.item_failed("b", "try 1")
    saved = course.to_dict()
    restored = Course.from_dict(json.loads(json.dumps(saved)), course.config)
    assert restored.next() == course.next() and restored.to_dict() == saved
    sizes = []
    for n in range(200):
        course.item_failed("b", f"try {n % 2}") if n % 2 else course.item_done("b")
        course.items["b"].status = "pending"  # keep working the same item
        if n in (10, 199):
            sizes.append(len(json.dumps(course.to_dict())))
    assert sizes[1] <= sizes[0] + 20, sizes


def test_review_cases_the_last_step_a_second_loop_a_replan_on_done_items_and_a_long_run_of_failures():
    """Found in review: each of these went wrong in the first version."""
    course = Course("g", MissionConfig(max_steps=4))
    course.planned(plan("a", "b"), [])
    course.item_done("a")
    course.item_done("b")
    course.confirmation(True, "both exist")  # the fourth step: the goal is met on the last step allowed
    assert course.next() == Finish("completed", "every item is done and the goal is met")

    course = Course("g", CONFIG)
    course.planned(plan("a", "b"), [])
    course.item_failed("a", "same")
    course.item_failed("a", "same")
    assert isinstance(course.next(), Replan)
    course.planned(plan("a", "b"), [])
    course.item_done("a")
    course.item_failed("b", "other")
    course.item_failed("b", "other")
    assert isinstance(course.next(), Replan)  # a new loop after progress gets its own re-plan, not a stop

    course = Course("g", CONFIG)
    course.planned(plan("a", "b"), [])
    course.item_done("a")
    course.item_failed("b", "x")
    course.item_failed("b", "y")
    course.item_failed("b", "z")
    assert isinstance(course.next(), Replan)
    remade = MissionPlan.model_validate(
        {
            "items": [
                {
                    "id": "c",
                    "title": "c",
                    "specialist": "devops_specialist",
                    "instructions": "c",
                    "depends_on": ["a"],
                    "criteria": [{"kind": "file", "check": "c"}],
                }
            ]
        }
    )
    from mamabear.mission.plan import problems

    assert problems(remade, {"devops_specialist"}, course.done()) == []  # a re-plan may depend on what is done
    course.planned(remade, [])
    step = course.next()
    assert isinstance(step, RunItem) and step.item.id == "c" and course.items["a"].status == "done"

    course = Course("g", MissionConfig(item_retries=10_000, stuck=StuckLimits(same_failure=3, steps_without_progress=10_000)))
    course.planned(plan("a"), [])
    course.item_failed("a", "reason 0")
    small = len(json.dumps(course.to_dict()))
    for n in range(1, 1000):
        course.item_failed("a", f"reason {'abcdefghijklmnopqrstuvwxyz'[n % 26] * (1 + n % 7)}")  # each unlike the last
    assert len(json.dumps(course.to_dict())) < small + 100  # only the last few failures are kept

    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    course.confirmation(False, "the README is missing")
    course.planned(plan("a"), ["item 'a' names specialist 'chef'"])
    assert course.next() == Replan("the goal is not met yet: the README is missing; the last re-plan was not usable: item 'a' names specialist 'chef'")


def test_the_items_that_can_start_now_are_offered_together_within_the_limit_and_the_steps_left():
    course = Course("three files and a report", MissionConfig(max_steps=4))
    items = [*plan("a", "b", "c", chain=False).items, *plan("a", "report").items[1:]]  # report waits on a
    course.planned(MissionPlan(items=items), [])
    assert [(r.item.id, r.attempt) for r in course.ready(most=4)] == [("a", 1), ("b", 1), ("c", 1)]  # not report
    assert [r.item.id for r in course.ready(most=2)] == ["a", "b"]
    course.item_failed("b", "no b")
    course.item_done("a")  # 3 steps taken of 4: one more fits
    assert [(r.item.id, r.feedback) for r in course.ready(most=4)] == [("b", "no b")]
    course.item_done("b")
    assert course.ready(most=4) == []  # the step limit is reached: no item is offered


def test_a_saved_mission_state_is_read_by_one_typed_reader_old_states_too():
    from mamabear.mission.state import MissionState

    old = {"course": {"goal": "g", "plan": {"items": []}, "version": 1, "items": {"i1": {"status": "pending", "attempts": 2, "failures": ["no file"]}}}}
    state = MissionState.read(old)  # saved before plans had versions, before max_steps and confirmation were kept
    assert state is not None and state.course.plan == {"items": []} and state.max_steps is None and state.course.confirmed is False
    assert state.item_states() == {"i1": "failed"} and MissionState.read(None) is None
    assert MissionState.read(state.model_dump(mode="json")) == state


def test_a_failure_whose_numbers_times_and_ids_vary_is_the_same_failure():
    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    course.item_failed("a", "`pytest -q` exited 1: 3 failed in 0.42s (pid 4411, /tmp/tmpab12cd34)")
    course.item_failed("a", "`pytest -q` exited 1: 5 failed in 1.97s (pid 5120, /tmp/tmpq9x8w7v6)")
    replan = course.next()
    assert isinstance(replan, Replan) and replan.reason.startswith("stuck: item 'a' failed the same way 2 times in a row")
    other = Course("g", CONFIG)  # another exit code is another failure: tried again
    other.planned(plan("a"), [])
    other.item_failed("a", "`pytest -q` exited 1: 3 failed")
    other.item_failed("a", "`pytest -q` exited 2: usage error")
    assert isinstance(other.next(), RunItem)


def test_steps_without_progress_fires_with_the_defaults_because_a_re_plan_is_not_progress():
    course = Course("g", CONFIG)
    course.planned(plan("a"), [])
    words = iter("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split())
    actions = []
    while len(actions) < 30:
        action = course.next()
        actions.append(action)
        if isinstance(action, RunItem):
            course.item_failed("a", f"the check said {next(words)}")  # never the same way twice
        elif isinstance(action, Replan):
            course.planned(plan("a"), [])
        else:
            break
    n = CONFIG.stuck.steps_without_progress  # three re-plans of three tries each: the tenth failure is the stop
    assert actions[-1] == Finish("stuck", f"no item was done in {n} steps, with the plan remade 3 times already")
    assert course.replans == CONFIG.replans and sum(isinstance(a, RunItem) for a in actions) == n


def test_an_item_out_of_tries_does_not_starve_the_items_that_do_not_depend_on_it():
    course = Course("g", MissionConfig(item_retries=0))
    course.planned(plan("a", "b", "c", chain=False), [])
    course.item_failed("a", "no")
    ran = []
    while isinstance(action := course.next(), RunItem):
        ran.append(action.item.id)
        course.item_done(action.item.id)
    assert ran == ["b", "c"] and action == Replan("item 'a' failed 1 times (last: no)")
