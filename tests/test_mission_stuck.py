"""Loops judged on what happened: the same call with the same result, the same call failing, two calls taking turns."""

from __future__ import annotations

from mamabear.mission.stuck import Call, loop, over_budget

TEST = ("bash", '{"command": "pytest -q"}')


def run(observed: str, tool: tuple[str, str] = TEST, failed: bool = False) -> Call:
    return Call(*tool, observed=observed, failed=failed)


def edit(n: int) -> Call:
    return Call("file_edit", f'{{"path": "a.py", "new": "v{n}"}}', "edited")


def test_the_same_call_with_the_same_result_three_times_in_a_row_is_a_loop_and_two_is_not():
    assert loop([run("1 failed")] * 2, 3) is None
    assert loop([run("1 failed")] * 3, 3) == 'the same tool call was made 3 times in a row, with the same result: bash {"command": "pytest -q"}'


def test_edit_then_test_is_progress_even_when_the_test_result_repeats_between_edits():
    calls = [edit(1), run("1 failed"), edit(2), run("1 failed"), edit(3), run("1 failed"), edit(4), run("passed")]
    assert all(loop(calls[: n + 1], 3) is None for n in range(len(calls)))


def test_the_same_command_with_a_new_result_each_time_is_progress():
    assert loop([run(f"{n} failed") for n in range(6)], 3) is None


def test_the_same_call_failing_is_a_loop_whatever_its_error_text():
    calls = [run(f"timed out after {n}.{n}s (pid {4000 + n})", failed=True) for n in range(3)]
    assert loop(calls, 3) == 'the same tool call failed 3 times in a row: bash {"command": "pytest -q"}'
    assert loop([*calls[:2], run("ok")], 3) is None


def test_two_calls_taking_turns_with_the_same_results_is_a_loop():
    a, b = run("1 failed"), Call("bash", '{"command": "cat a.py"}', "print(1)")
    assert loop([a, b] * 2 + [a], 3) is None
    said = loop([a, b] * 3, 3)
    assert said == 'two tool calls took turns 3 times each, with the same results: bash {"command": "pytest -q"} and bash {"command": "cat a.py"}'
    moving = [a, b, a, Call("bash", '{"command": "cat a.py"}', "print(2)"), a, b]  # the file changed in between
    assert loop(moving, 3) is None


def test_a_try_has_a_budget_of_tool_calls():
    calls = [run(f"{n}", ("bash", f'{{"command": "echo {n}"}}')) for n in range(15)]
    assert loop(calls, 3) is None  # a loop with varied arguments is not a loop by these rules: the budget bounds it
    assert over_budget(calls[:14], 15) is None
    assert over_budget(calls, 15).startswith("the try made 15 tool calls, its limit, without finishing")
    assert over_budget(calls, 0) is None
