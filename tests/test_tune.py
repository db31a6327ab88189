"""`mamabear tune`: candidates measured on an eval's cases against a scripted server where the cheap model fails one
judged case when it writes the summary, and not when it gathers; only the change that holds quality is kept."""

from __future__ import annotations

import json

import pytest

AGENTS = """\
gatherer:
  role: Gatherer
  goal: Gather facts
  backstory: Reads widely.
  tier: pro
writer:
  role: Writer
  goal: Write summaries
  backstory: Writes clearly.
  tier: pro
"""
TASKS = """\
# the brief's two steps
gather:
  description: Gather facts about {topic}.
  expected_output: A list of facts.
  agent: gatherer
summarize:
  description: Summarize the facts about {topic} in one sentence.
  expected_output: One sentence.
  agent: writer
"""
CASES = """\
crew: brief
margin: {pass_rate: 0.1, score: 1}
cases:
"""
JUDGE = "You score a piece of work against a rubric"


@pytest.fixture
def project(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    root = tmp_path / "project"
    for part in ("config", "crews", "evals"):
        (root / part).mkdir(parents=True)
    (root / "config" / "agents.yaml").write_text(AGENTS)
    (root / "config" / "tasks.yaml").write_text(TASKS)
    (root / "crews" / "brief.yaml").write_text("description: a brief\nagents: [gatherer, writer]\ntasks: [gather, summarize]\ninputs: [topic]\n")
    topics = ("otters", "owls", "bees")
    (root / "evals" / "brief.yaml").write_text(
        CASES + "".join(f"  - name: {t}\n    inputs: {{topic: {t}}}\n    checks: [{{judge: The summary is accurate}}]\n" for t in topics)
    )
    monkeypatch.chdir(root)
    return root


def scripted(fake) -> None:  # noqa: ANN001
    fake.add(model="gpt-4.1-mini", task="Summarize the facts about owls", text="BAD summary of owls.")  # the cheap model's slip
    fake.add(contains="The work:\nBAD summary", text=json.dumps({"score": 2, "reason": "owls are not summarized"}))
    fake.add(contains=JUDGE, text=json.dumps({"score": 9, "reason": "accurate"}))


def test_the_tuner_keeps_the_cheaper_tier_that_holds_quality_and_rejects_the_one_that_does_not(cli, fake, isolated, project):
    scripted(fake)
    result = cli("tune", "--cases", "evals/brief.yaml", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    rows = {c["what"]: c for c in doc["candidates"]}
    fast = "on the fast tier (openai/gpt-4.1-mini)"
    assert sorted(rows) == ["as it is", f"gather {fast}", f"summarize {fast}"] and doc["candidates"][0]["what"] == "as it is"
    base, gather, summarize = rows["as it is"], rows[f"gather {fast}"], rows[f"summarize {fast}"]
    assert (base["pass_rate"], gather["pass_rate"], summarize["pass_rate"]) == (1.0, 1.0, pytest.approx(0.667, abs=0.001))
    assert gather["kept"] and gather["cost_per_pass_usd"] < base["cost_per_pass_usd"]
    assert not summarize["kept"] and summarize["verdict"] == "pass rate 67% against 100%"
    assert doc["winner"]["what"] == gather["what"] and not doc["winner"]["applied"]
    assert "+  complexity: 3" in doc["winner"]["diff"] and "a/config/tasks.yaml" in doc["winner"]["diff"]
    assert (project / "config" / "tasks.yaml").read_text() == TASKS  # nothing changed without --apply
    assert {h["task"] for h in doc["history"]} == {"gather", "summarize"}


def test_apply_writes_the_winning_change_into_the_projects_config_keeping_the_rest(cli, fake, isolated, project):
    scripted(fake)
    result = cli("tune", "--cases", "evals/brief.yaml", "--base-url", fake.url, "--apply", "--quiet")
    assert result.code == 0, result.err
    assert "winner: gather on the fast tier" in result.out and "written to" in result.out
    text = (project / "config" / "tasks.yaml").read_text()
    assert text.startswith("# the brief's two steps\ngather:\n  complexity: 3\n  description: Gather facts about {topic}.")
    assert text.count("complexity") == 1 and cli("validate").code == 0
    again = cli("run", "brief", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet").json()
    assert [t["model"] for t in again["tasks"]] == ["openai/gpt-4.1-mini", "openai/gpt-4.1"]


def test_a_failed_judged_case_gets_a_prompt_revision_candidate_from_the_model_coordinator(cli, fake, isolated, project):
    fake.add(contains="You improve the instructions", text="Summarize the facts about {topic} in one accurate sentence, naming it.")
    fake.add(task="Summarize the facts about owls in one sentence", text="BAD summary of owls.")  # fails on any model
    scripted(fake)
    doc = cli("tune", "--cases", "evals/brief.yaml", "--base-url", fake.url, "--json", "--quiet").json()
    revised = next(c for c in doc["candidates"] if "revised" in c["what"])
    assert revised["what"] == "summarize's description revised by the model coordinator"
    assert revised["kept"] and revised["pass_rate"] == 1.0  # the revised task no longer meets the failing rule
    asked = next(r for r in fake.chat_requests if "You improve the instructions" in r["text"])
    assert "case owls: judge: The summary is accurate: owls are not summarized" in asked["text"]
    assert doc["winner"]["what"] == revised["what"] and "in one accurate sentence, naming it." in doc["winner"]["diff"]
