"""`mamabear eval`: cases run as ordinary runs against the scripted model server, checked, stored, gated on a baseline,
and replayed from a recording at no cost."""

from __future__ import annotations

import json

import pytest

from conftest import store_for

AGENTS = "noter:\n  role: Noter\n  goal: Note facts about {topic}\n  backstory: Keeps notes.\n  tier: fast\n"
TASKS = "note:\n  description: Note one fact about {topic} as JSON.\n  expected_output: A JSON object with a fact.\n  agent: noter\n"
CASES = """\
crew: note
margin: {pass_rate: 0.1, score: 1}
cases:
  - name: otters
    inputs: {topic: otters}
    checks:
      - contains: hands
      - regex: "(?i)otters? hold"
      - json_schema: {type: object, required: [fact], properties: {fact: {type: string}}}
      - judge: The fact is true and about otters
  - name: owls
    inputs: {topic: owls}
    checks:
      - contains: owls
      - judge: The fact is true and about owls
"""
JUDGE = "You score a piece of work against a rubric"


@pytest.fixture
def project(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    root = tmp_path / "project"
    (root / "config").mkdir(parents=True)
    (root / "crews").mkdir()
    (root / "evals").mkdir()
    (root / "config" / "agents.yaml").write_text(AGENTS)
    (root / "config" / "tasks.yaml").write_text(TASKS)
    (root / "crews" / "note.yaml").write_text("description: one note\nagents: [noter]\ntasks: [note]\ninputs: [topic]\n")
    (root / "evals" / "facts.yaml").write_text(CASES)
    monkeypatch.chdir(root)
    return root


def answers(fake, owl_score: int = 8) -> None:  # noqa: ANN001
    fake.add(task="Note one fact about otters", text='{"fact": "Otters hold hands while they sleep."}')
    fake.add(task="Note one fact about owls", text='{"fact": "Burrowing ones nest underground."}')  # never says "owls"
    fake.add(contains="about otters\n\nThe work", text='{"score": 9, "reason": "true, and about otters"}')
    fake.add(contains="about owls\n\nThe work", text=json.dumps({"score": owl_score, "reason": f"scored {owl_score}"}))


def test_an_eval_runs_each_case_checks_it_and_stores_the_results(cli, fake, isolated, project):
    answers(fake)
    result = cli("eval", "--cases", "evals/facts.yaml", "--repeat", "2", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    otters, owls = doc["cases"]["otters"], doc["cases"]["owls"]
    assert (otters["runs"], otters["pass_rate"], otters["score"]) == (2, 1.0, 9.0)
    assert [c["pass_rate"] for c in otters["checks"].values()] == [1.0, 1.0, 1.0, 1.0]
    assert owls["pass_rate"] == 0.0 and owls["checks"]["contains: owls"] == {"pass_rate": 0.0, "score": None, "last": "not in the output"}
    assert owls["checks"]["judge: The fact is true and about owls"]["score"] == 8.0
    assert doc["pass_rate"] == 0.5 and doc["cost_per_pass_usd"] == pytest.approx(doc["cost_usd"] / 2)
    judged = [r for r in fake.chat_requests if JUDGE in r["text"]]
    assert len(judged) == 4 and len(fake.chat_requests) == 8  # a run and a judge call per case and repeat
    store = store_for(isolated)
    rows = store.eval_results("facts")
    assert [(r["case_name"], r["repeat"], r["passed"]) for r in rows] == [("otters", 1, True), ("otters", 2, True), ("owls", 1, False), ("owls", 2, False)]
    run = store.run(rows[0]["run_id"])
    assert run.options["eval"] == "facts" and run.options["case"] == "otters" and run.status == "completed"
    assert doc["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows)) and doc["cost_usd"] > 0


def test_the_table_shows_each_case_and_check_and_why_a_check_failed(cli, fake, isolated, project):
    answers(fake)
    result = cli("eval", "note", "--cases", "evals/facts.yaml", "--base-url", fake.url, "--quiet")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert any(line.split()[:4] == ["otters", "1", "100%", "9.0"] for line in lines), result.out
    assert any(line.split()[:4] == ["owls", "1", "0%", "8.0"] for line in lines)
    assert "owls: contains: owls failed: not in the output" in result.out


def test_a_baseline_gate_exits_1_on_a_regression_and_0_otherwise(cli, fake, isolated, project, tmp_path):
    answers(fake)
    base = tmp_path / "baseline.json"
    assert cli("eval", "--cases", "evals/facts.yaml", "--base-url", fake.url, "--save-baseline", str(base), "--quiet").code == 0
    assert json.loads(base.read_text())["score"] == 8.5
    same = cli("eval", "--cases", "evals/facts.yaml", "--base-url", fake.url, "--baseline", str(base), "--quiet")
    assert same.code == 0, same.err
    fake.reset()
    answers(fake, owl_score=2)  # the mean score falls from 8.5 to 5.5, beyond the margin of 1
    worse = cli("eval", "--cases", "evals/facts.yaml", "--base-url", fake.url, "--baseline", str(base), "--json", "--quiet")
    assert worse.code == 1
    assert worse.json()["baseline"]["regressions"] == ["the mean score fell to 5.5 from 8.5 (margin 1)"]
    assert "eval facts regressed against" in worse.err and "the mean score fell to 5.5 from 8.5" in worse.err
    missing = cli("eval", "--cases", "evals/facts.yaml", "--baseline", str(tmp_path / "none.json"))
    assert missing.code == 2 and "cannot read the baseline" in missing.err


def test_an_eval_recorded_once_replays_in_ci_with_no_request_and_the_same_figures(cli, fake, isolated, project, tmp_path):
    answers(fake)
    tape = tmp_path / "facts.jsonl"
    recorded = cli("eval", "--cases", "evals/facts.yaml", "--model", "openai/gpt-4.1-mini", "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    asked = len(fake.chat_requests)
    replayed = cli("eval", "--cases", "evals/facts.yaml", "--model", "openai/gpt-4.1-mini", "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    assert len(fake.chat_requests) == asked  # zero requests, no server, no key
    keep = ("pass_rate", "score", "runs")
    assert {k: replayed.json()[k] for k in keep} == {k: recorded.json()[k] for k in keep}
    assert replayed.json()["cost_usd"] == 0


@pytest.mark.memory_on
def test_a_memory_on_eval_replays_with_the_same_figures_though_the_memory_changed(cli, fake, isolated, project, tmp_path):
    """The README's CI recipe with the default memory on: record once, then replay; the memory filled meanwhile by the
    recorded runs (and more) recalls nothing different on replay."""
    answers(fake)
    tape = tmp_path / "facts.jsonl"
    model = ["--model", "openai/gpt-4.1-mini"]
    recorded = cli("eval", "--cases", "evals/facts.yaml", *model, "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    assert cli("memory", "add", "Owls can turn their heads 270 degrees.").code == 0
    asked = len(fake.chat_requests)
    replayed = cli("eval", "--cases", "evals/facts.yaml", *model, "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    keep = ("pass_rate", "score", "runs")
    assert {k: replayed.json()[k] for k in keep} == {k: recorded.json()[k] for k in keep} and len(fake.chat_requests) == asked


def test_an_eval_replay_that_misses_exits_2_naming_the_case_never_a_pass(cli, fake, isolated, project, tmp_path):
    answers(fake)
    tape = tmp_path / "facts.jsonl"
    recorded = cli("eval", "--cases", "evals/facts.yaml", "--model", "openai/gpt-4.1-mini", "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    lines = tape.read_text().splitlines()
    tape.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # a recording that lacks what later requests ask
    replayed = cli("eval", "--cases", "evals/facts.yaml", "--model", "openai/gpt-4.1-mini", "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 2, replayed.out
    assert "case '" in replayed.err and "asked the model something" in replayed.err and "Traceback" not in replayed.err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("cases: []\n", "`cases` must be a list of at least one case"),
        ("cases:\n  - inputs: {topic: x}\n    checks: [{regex: '('}]\n", "facts.yaml:3: not a valid regular expression"),
        ("cases:\n  - inputs: {topic: x}\n    checks: [{judge: ok, pass_at: 11}]\n", "pass_at must be a whole number from 1 to 10"),
        ("cases:\n  - inputs: {topic: x}\n    checks: [{smells: ok}]\n", "each check is one of contains, regex, json_schema, command, judge"),
        ("crew: note\ncases:\n  - inputs: {}\n    checks: [{contains: x}]\n", "topic"),
    ],
)
def test_a_bad_case_file_is_one_sentence_and_exit_2_before_any_run(cli, fake, isolated, project, text, said):
    (project / "evals" / "facts.yaml").write_text(text)
    result = cli("eval", "note", "--cases", "evals/facts.yaml", "--base-url", fake.url)
    assert result.code == 2 and said in result.err and "Traceback" not in result.err, result.err
    assert fake.chat_requests == [] and cli("runs", "list", "--json").json() == []


def test_stats_show_each_evals_pass_rate_and_cost_per_passing_run_by_day(cli, fake, isolated, project):
    import time

    answers(fake)
    assert cli("eval", "--cases", "evals/facts.yaml", "--repeat", "2", "--base-url", fake.url, "--quiet").code == 0
    rows = store_for(isolated).eval_results("facts")
    [figures] = cli("stats", "--json").json()["evals"]
    assert figures["eval"] == "facts" and figures["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert (figures["runs"], figures["pass_rate"], figures["score"]) == (4, 0.5, 8.5)
    assert figures["cost_per_pass_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows) / 2, abs=1e-6)
    shown = cli("stats").out
    assert "evals" in shown and any(line.split()[:4] == ["facts", figures["day"], "4", "50.0%"] for line in shown.splitlines()), shown


def test_a_mission_case_is_checked_in_its_sandbox_and_replays_from_its_recording(cli, fake, isolated, project, tmp_path):
    from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER, create

    (project / "evals" / "greet.yaml").write_text(
        "cases:\n  - name: greeting\n    mission: leave a greeting in hello.txt\n"
        "    checks: [{command: grep -q hi hello.txt}, {command: test -f goodbye.txt}]\n"
    )
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    fake.add(task="Write the greeting file", times=1, tool_calls=create("hi\n"))
    fake.add(task="Write the greeting file", times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    tape, model = tmp_path / "greet.jsonl", ["--model", "openai/gpt-4.1-mini"]
    recorded = cli("eval", "--cases", "evals/greet.yaml", *model, "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    checks = recorded.json()["cases"]["greeting"]["checks"]
    assert checks["command: grep -q hi hello.txt"]["pass_rate"] == 1.0  # in the mission's own workspace
    assert checks["command: test -f goodbye.txt"] == {"pass_rate": 0.0, "score": None, "last": "exit code 1"}
    asked = len(fake.chat_requests)
    replayed = cli("eval", "--cases", "evals/greet.yaml", *model, "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    assert replayed.json()["cases"]["greeting"]["checks"] == checks and len(fake.chat_requests) == asked
