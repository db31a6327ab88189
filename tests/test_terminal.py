"""What a person sees at a real terminal: the CLI under a pseudo-terminal (pexpect), for a completed run and every stop."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from conftest import REPO, subprocess_env

RESEARCH = ["run", "research", "-i", "topic=otters"]
PROMPT = r"go, edit or abort \S*\[go/edit/abort\]\S* \S*\(go\)\S*: "  # Rich's prompt, coloured
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][AB012]|\r")


def screen(text: str) -> str:
    return ANSI.sub("", text)


def spawn(home: Path, *args: str, editor: str = "false") -> pexpect.spawn:
    env = subprocess_env(MAMABEAR_HOME=str(home), TERM="xterm-256color", COLUMNS="160", LINES="40", EDITOR=editor)
    env.pop("VISUAL", None)
    env.pop("NO_COLOR", None)
    return pexpect.spawn(
        sys.executable, ["-m", "mamabear", *args], env=env, cwd=str(REPO), dimensions=(40, 160), encoding="utf-8", codec_errors="replace", timeout=120
    )


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0), screen(child.before)


def assert_clean(text: str) -> None:
    assert "Traceback" not in text and "MarkupError" not in text and "Error:" not in text.replace("error:", ""), text


def test_a_completed_run_shows_the_live_table_then_the_summary_and_the_result(fake, isolated):
    child = spawn(isolated, *RESEARCH, "--base-url", fake.url)
    code, text = finish(child)
    assert code == 0, text
    assert_clean(text)
    run_id = re.search(r"research (\d{6}-\d{6}-[0-9a-f]{4}): completed", text)
    assert run_id, text  # the summary table's title
    assert text.count("completed") >= 4  # three tasks and the total row
    assert "Result for:" in text  # the crew's output, printed after the table
    assert "importing CrewAI" in text  # the live view says what the start-up is doing (seconds of it), not just "starting"


@pytest.mark.parametrize(
    ("flags", "rule", "code", "status", "hint", "verb"),
    [
        (["--max-duration", "2s"], {"delay": 3.0, "times": 1}, 4, "time_limit", "reached its time limit of 2.0s", "reached"),
        (["--budget-usd", "0.0001"], {}, 3, "budget_exhausted", "of its $0.0001 budget", "spent"),
    ],
    ids=["time-limit", "budget"],
)
def test_a_limit_stops_the_run_with_its_exit_code_and_a_clean_screen(fake, isolated, cli, flags, rule, code, status, hint, verb):
    fake.add(**rule)
    child = spawn(isolated, *RESEARCH, "--base-url", fake.url, *flags)
    exit_code, text = finish(child)
    assert exit_code == code, text
    assert_clean(text)
    assert f": {status}" in text and hint in text and "mamabear resume" in text
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    assert cli("runs", "show", run_id, "--json").json()["status"] == status
    assert f"run {run_id} {verb}" in " ".join(text.split())  # a sentence: not "run X {status}: ..."
    logs = cli("runs", "logs", run_id).out
    assert "stopped: the run" in logs or "failed" not in logs  # a stopped task is not reported as failed
    shown = spawn(isolated, "runs", "show", run_id)  # pending tasks are shown, not a crash
    shown_code, shown_text = finish(shown)
    assert shown_code == 0, shown_text
    assert_clean(shown_text)
    assert "pending" in shown_text and status in shown_text


def test_ctrl_c_stops_the_run_with_130_and_a_clean_screen(fake, isolated, cli):
    fake.add(task="Research", delay=60, times=1)
    child = spawn(isolated, *RESEARCH, "--base-url", fake.url)
    deadline = time.monotonic() + 60
    while not fake.chat_requests and time.monotonic() < deadline:  # the first model call is in flight
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)
    assert fake.chat_requests
    child.sendintr()
    code, text = finish(child)
    assert code == 130, text
    assert_clean(text)
    assert ": interrupted" in text and "was interrupted" in text and "mamabear resume" in text
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    shown_code, shown_text = finish(spawn(isolated, "runs", "show", run_id))
    assert shown_code == 0 and "interrupted" in shown_text and "pending" in shown_text, shown_text


def test_runs_cancel_stops_the_run_with_130_and_a_clean_screen(fake, isolated, cli):
    fake.add(task="Research", delay=60, times=1)
    child = spawn(isolated, *RESEARCH, "--base-url", fake.url)
    deadline = time.monotonic() + 60
    while not fake.chat_requests and time.monotonic() < deadline:
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    cancel = subprocess.run(
        [sys.executable, "-m", "mamabear", "runs", "cancel", run_id],
        capture_output=True,
        text=True,
        env=subprocess_env(MAMABEAR_HOME=str(isolated)),
        cwd=REPO,
        timeout=60,
    )
    assert cancel.returncode == 0, cancel.stderr
    code, text = finish(child)
    assert code == 130, text
    assert_clean(text)
    assert ": cancelled" in text and "mamabear resume" in text
    assert f"run {run_id} was cancelled." in text and "cancelled: was cancelled" not in text
    assert cli("runs", "show", run_id, "--json").json()["status"] == "cancelled"


def test_every_status_has_a_colour_and_no_status_is_read_as_markup() -> None:
    from rich.console import Console

    from mamabear.cli.output import STATUS_STYLE, status_text, table
    from mamabear.status import Status

    assert set(STATUS_STYLE) == {s.value for s in Status}
    out = Console(width=80, record=True, color_system=None)
    rows = table("status", "name")
    for status in [*Status, "a_status_from_a_newer_version", None]:
        rows.add_row(status_text(status), "[/] [bold]not markup")
    out.print(rows)
    text = out.export_text()
    assert "a_status_from_a_newer_version" in text and text.count("[/] [bold]not markup") == len(Status) + 2


def test_a_mission_s_plan_is_reviewed_edited_and_carried_out_with_a_live_checklist(fake, isolated, cli):
    from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER

    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    made = [{"name": "file_create", "arguments": {"path": "greeting.txt", "file_text": "hi\n"}}]
    fake.add(task="Write the greeting file", times=1, tool_calls=made)
    fake.add(task="Write the greeting file", times=1, text="Wrote greeting.txt.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "greeting.txt holds hi"}')
    child = spawn(isolated, "mission", "leave a greeting", "--review-plan", "--base-url", fake.url, editor="sed -i s/hello[.]txt/greeting.txt/g")
    child.expect(PROMPT)
    assert "grep -q hi hello.txt" in screen(child.before)  # the plan as the commander made it
    child.sendline("edit")
    child.expect(r"the plan as edited")
    child.expect(PROMPT)
    assert "grep -q hi greeting.txt" in screen(child.before)
    child.sendline("go")
    code, text = finish(child)
    assert code == 0, text
    assert_clean(text)
    assert "[x] Write the greeting file  devops_specialist · done" in text  # the checklist, kept on screen at the end
    assert "plan v2  step 3 of 200" in text and "Files in the workspace (2):" in text
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    plans = cli("runs", "show", run_id, "--json").json()["mission"]["plans"]
    assert [(p["version"], p["edited"]) for p in plans] == [(1, False), (2, True)]
    assert plans[1]["items"][0]["criteria"][0] == {"kind": "file", "check": "greeting.txt"}


def test_every_plan_version_is_reviewed_and_review_first_plan_lets_re_plans_go_unreviewed(fake, isolated, cli):
    from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER

    def script() -> None:
        fake.reset()
        fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
        fake.add(contains="The plan must change", times=1, text=json.dumps(HELLO_PLAN))
        fake.add(task="Write the greeting file", times=3, text="I could not.")  # try 1 to 3 of plan v1 fail: a re-plan
        fake.add(task="Write the greeting file", times=1, tool_calls=[{"name": "file_create", "arguments": {"path": "hello.txt", "file_text": "hi\n"}}])
        fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt.")
        fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')

    for flag, reviews in (("--review-plan", 2), ("--review-first-plan", 1)):
        script()
        child = spawn(isolated, "mission", "leave a greeting", flag, "--base-url", fake.url, "--no-cache")  # each run asks the model
        for _ in range(reviews):
            child.expect(PROMPT)
            child.sendline("go")
        code, text = finish(child)
        assert code == 0, text
        assert screen(text).count("go, edit or abort") == 0  # each prompt was answered before the end (none is left)
        run_id = cli("runs", "list", "--json").json()[0]["id"]
        assert [p["version"] for p in cli("runs", "show", run_id, "--json").json()["mission"]["plans"]] == [1, 2]


def test_a_mission_aborted_at_its_review_runs_no_item_and_a_broken_edit_is_asked_again(fake, isolated, cli):
    from test_mission_run import HELLO_PLAN, PLANNER

    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    editor = r"sed -i -e s/devops_specialist/chef/ -e s/depends_on:.*/depends_on:\ [hello]/"
    child = spawn(isolated, "mission", "leave a greeting", "--review-plan", "--base-url", fake.url, "--max-duration", "8s", editor=editor)
    child.expect(PROMPT)
    time.sleep(9)  # longer than the time limit (which leaves room for start-up and the plan on a loaded machine)
    child.sendline("edit")
    child.expect(r"the edited plan cannot be used: item 'hello' names specialist 'chef'.*in a cycle: hello -> hello")
    child.expect(PROMPT)
    child.sendline("abort")
    code, text = finish(child)
    assert code == 130, text
    assert_clean(text)
    assert "was cancelled at its plan review" in text
    assert "start it again with `mamabear mission 'leave a greeting'`" in text and "mamabear resume" not in text
    assert not [r for r in fake.chat_requests if "Write the greeting file" in r["task"]]
    run = cli("runs", "list", "--json").json()[0]
    assert run["status"] == "cancelled"
    resumed = cli("resume", run["id"])  # what a person turned down is not carried out unreviewed
    assert resumed.code == 2 and "was aborted at its plan review, so it is not resumed" in resumed.err
    assert len([r for r in fake.chat_requests if PLANNER in r["text"]]) == 1


def test_review_plan_off_a_terminal_is_refused_with_exit_2(cli, isolated):
    result = cli("mission", "leave a greeting", "--review-plan")
    assert result.code == 2 and "--review-plan asks at a terminal" in result.err and "Traceback" not in result.err
    assert cli("runs", "list", "--json").json() == []


def test_a_task_with_human_input_asks_at_the_terminal_and_takes_the_answer(fake, isolated, tmp_path):
    project = tmp_path / "asking"
    (project / "config").mkdir(parents=True)
    (project / "crews").mkdir()
    (project / "config" / "agents.yaml").write_text("writer:\n  role: Writer\n  goal: Write about {topic}\n  backstory: b\n  tier: fast\n")
    (project / "config" / "tasks.yaml").write_text(
        "draft:\n  description: Draft a line about {topic}.\n  expected_output: One line.\n  agent: writer\n  human_input: true\n"
    )
    (project / "crews" / "ask.yaml").write_text("description: ask\nagents: [writer]\ntasks: [draft]\ninputs: [topic]\n")
    fake.add(task="Draft a line about", times=1, text="Otters hold hands.")
    fake.add(contains="mention that they sleep", times=1, text="Otters hold hands while they sleep.")  # the answer to the feedback
    env = subprocess_env(MAMABEAR_HOME=str(isolated), TERM="xterm-256color", COLUMNS="160", LINES="40")
    child = pexpect.spawn(sys.executable, ["-m", "mamabear", "run", "ask", "-i", "topic=otters", "--base-url", fake.url], env=env, cwd=str(project),
                          dimensions=(40, 160), encoding="utf-8", codec_errors="replace", timeout=120)  # fmt: skip
    child.expect("Human Feedback Required")
    assert "Otters hold hands." in screen(child.before)  # the answer asked about is on the screen
    child.sendline("mention that they sleep")
    child.expect("Human Feedback Required")
    child.sendline("")  # content: accept it
    code, text = finish(child)
    assert code == 0, text
    assert "Otters hold hands while they sleep." in text
    feedback = [r for r in fake.chat_requests if "mention that they sleep" in r["text"]]
    assert len(feedback) == 1
