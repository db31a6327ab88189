"""Every key of CrewAI's agents.yaml and tasks.yaml schema, taken as written: plain values passed through, Python objects
named by import path (output_pydantic, callbacks, guardrails), and each mistake an exit 2 at its file:line."""

from __future__ import annotations

import json
from pathlib import Path

from crewai import Agent, Task
from crewai.project.crew_base import AgentConfig, TaskConfig

from conftest import killed_at
from mamabear.config.catalog import AGENT_FIELDS, CREWAI_AGENT_KEYS, CREWAI_TASK_KEYS, TASK_FIELDS

AGENTS = """\
analyst:
  role: Otter analyst
  goal: Know {topic} well
  backstory: Years by the river.
  tier: fast
  verbose: false
  allow_delegation: false
  allow_code_execution: false
  multimodal: false
  use_system_prompt: true
  max_reasoning_attempts: 2
  inject_date: true
  date_format: "%Y-%m-%d"
  max_execution_time: 600
  memory: false
  respect_context_window: true
  function_calling_llm: openai/gpt-4.1-nano
"""
TASKS = """\
summarise:
  description: Summarise what is known about {topic}.
  expected_output: A title and three points.
  agent: analyst
  output_pydantic: otterproj.models:Summary
  callback: otterproj.hooks:keep
  guardrail: otterproj.hooks:mentions_otters
  guardrail_max_retries: 2
  max_retries: 1
  markdown: false
  human_input: false
  config: {}
"""
MODELS = "from pydantic import BaseModel\n\n\nclass Summary(BaseModel):\n    title: str\n    points: list[str]\n"
HOOKS = """\
import os
from pathlib import Path


def keep(output):
    Path(os.environ["OTTERPROJ_OUT"]).write_text(output.raw)


def mentions_otters(output):
    if "otter" not in output.raw.lower():
        return False, "the summary must be about otters"
    return True, output.raw
"""
CREW = "description: otter summary\nagents: [analyst]\ntasks: [summarise]\ninputs: [topic]\n"


def write_project(root: Path, tasks: str = TASKS, agents: str = AGENTS, package: str = "otterproj", crew: str = CREW) -> None:
    files = {
        "config/agents.yaml": agents,
        "config/tasks.yaml": tasks.replace("otterproj.", f"{package}."),  # each test its own package: none is cached for another
        "crews/otters.yaml": crew,
        f"src/{package}/__init__.py": "",
        f"src/{package}/models.py": MODELS,
        f"src/{package}/hooks.py": HOOKS,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_keys_are_crewai_s_own_schema_so_the_list_cannot_drift():
    assert set(AgentConfig.__annotations__) == CREWAI_AGENT_KEYS
    assert set(TaskConfig.__annotations__) == CREWAI_TASK_KEYS
    assert AGENT_FIELDS <= set(Agent.model_fields) and TASK_FIELDS <= set(Task.model_fields)


def test_a_crew_using_crewai_keys_runs_with_its_model_callback_and_guardrail_retry(cli, fake, isolated, monkeypatch):
    write_project(Path.cwd())
    out = Path.cwd() / "callback.txt"
    monkeypatch.setenv("OTTERPROJ_OUT", str(out))
    summary = {"title": "Otters", "points": ["otters hold hands", "otters use tools", "otters live by rivers"]}
    fake.add(task="Summarise what is known", times=1, text='{"title": "Rivers", "points": ["water", "banks", "fish"]}')
    fake.add(task="Summarise what is known", times=1, text=json.dumps(summary))
    assert cli("validate").code == 0
    result = cli("run", "otters", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert json.loads(doc["output"]) == summary  # the pydantic output, as CrewAI gives it
    assert json.loads(out.read_text()) == summary  # the callback ran on the task's final output
    tries = [r for r in fake.chat_requests if "Summarise what is known" in r["text"]]
    assert len(tries) == 2 and "the summary must be about otters" in tries[1]["text"]  # the guardrail's reason fed back
    logs = cli("runs", "logs", doc["run_id"], "--json").json()
    failed = [e for e in logs if e["kind"] == "guardrail_failed"]
    assert len(failed) == 1 and failed[0]["task_position"] == 1 and failed[0]["data"]["error"] == "the summary must be about otters"
    assert [e["message"] for e in logs if e["kind"] == "guardrail_passed"] == ["guardrail mentions_otters of task 1 passed after 1 retries"]


def test_a_name_that_cannot_be_imported_is_exit_2_at_its_file_and_line_before_any_model_call(cli, fake, isolated):
    write_project(Path.cwd(), tasks=TASKS.replace("otterproj.models:Summary", "otterproj.models:Sumary"), package="otterproj_typo")
    checked = cli("validate")
    assert checked.code == 2 and "config/tasks.yaml:5: output_pydantic 'otterproj_typo.models:Sumary' of task 'summarise'" in checked.err, checked.err
    for args in (["--dry-run"], ["--base-url", fake.url]):
        result = cli("run", "otters", "-i", "topic=otters", *args)
        assert result.code == 2 and "config/tasks.yaml:5:" in result.err and "Traceback" not in result.err
    assert fake.chat_requests == []


def test_a_key_crewai_does_not_know_and_a_callback_that_is_not_callable_are_named(cli, isolated):
    write_project(Path.cwd(), agents=AGENTS + "  max_iterations: 3\n", package="otterproj_bad")
    checked = cli("validate")
    assert checked.code == 2 and "config/agents.yaml:18: unknown field 'max_iterations' in agent 'analyst'" in checked.err
    write_project(Path.cwd(), tasks=TASKS.replace("otterproj.hooks:keep", "otterproj.models:BaseModel.model_config"), package="otterproj_bad")
    checked = cli("validate")
    assert (
        checked.code == 2 and "config/tasks.yaml:6: callback 'otterproj_bad.models:BaseModel.model_config' of task 'summarise' must be callable" in checked.err
    )


def test_human_input_off_a_terminal_is_exit_2_with_a_sentence(cli, fake, isolated):
    write_project(Path.cwd(), tasks=TASKS.replace("human_input: false", "human_input: true"), package="otterproj_human")
    result = cli("run", "otters", "-i", "topic=otters", "--base-url", fake.url)
    assert result.code == 2 and "task 'summarise' asks a person to review its answer (human_input: true), and stdin is not a terminal" in result.err
    assert fake.chat_requests == []


def test_a_crew_with_callbacks_guardrails_and_models_killed_mid_run_resumes_with_them(cli, fake, isolated, monkeypatch):
    """A checkpoint holds no code (CrewAI would refuse to restore a callback): the resumed run gets it back from the YAML."""
    publish = (
        "publish:\n  description: Publish the summary about {topic}.\n  expected_output: The published summary.\n  agent: analyst\n"
        "  output_pydantic: otterproj.models:Summary\n  callback: otterproj.hooks:keep\n  guardrail: otterproj.hooks:mentions_otters\n"
    )
    crew = "description: otter summary\nagents: [analyst]\ntasks: [summarise, publish]\ninputs: [topic]\n"
    write_project(Path.cwd(), tasks=TASKS + publish, package="otterproj_resume", crew=crew)
    out = Path.cwd() / "callback.txt"
    monkeypatch.setenv("OTTERPROJ_OUT", str(out))
    summary = {"title": "Otters", "points": ["otters hold hands", "otters use tools", "otters live by rivers"]}
    fake.add(task="Summarise what is known", times=1, text=json.dumps(summary))
    fake.add(task="Publish the summary", times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    fake.add(task="Publish the summary", times=1, text='{"title": "Rivers", "points": []}')  # the guardrail refuses it
    fake.add(task="Publish the summary", times=1, text=json.dumps({**summary, "title": "Otters, published"}))
    killed_at(fake, isolated, "Publish the summary", "run", "otters", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=Path.cwd())
    assert json.loads(out.read_text()) == summary  # the first task's callback, before the kill
    checkpoints = list((isolated / "checkpoints").rglob("*.json"))
    assert checkpoints and not any("otterproj_resume" in p.read_text() for p in checkpoints)  # no code in a checkpoint
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    assert doc["attempts"][-1]["checkpoint"]  # restored from CrewAI's checkpoint, not rebuilt
    assert len([r for r in fake.chat_requests if "Summarise what is known" in r["task"]]) == 1  # not asked again
    assert json.loads(doc["output"])["title"] == "Otters, published"  # the output model, after the guardrail's retry
    assert json.loads(out.read_text())["title"] == "Otters, published"  # the callback, given back to the restored task
    failed = [e for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "guardrail_failed"]
    assert [e["task_position"] for e in failed] == [2]


def test_human_input_takes_its_feedback_from_answers_off_a_terminal(cli, fake, isolated, tmp_path):
    """--answers: each round of feedback reaches the model, then the answer is accepted; each is an event of the run."""
    project = Path.cwd()
    (project / "config").mkdir()
    (project / "crews").mkdir()
    (project / "config" / "agents.yaml").write_text("writer:\n  role: Writer\n  goal: Write about {topic}\n  backstory: b\n  tier: fast\n")
    (project / "config" / "tasks.yaml").write_text(
        "draft:\n  description: Draft a line about {topic}.\n  expected_output: One line.\n  agent: writer\n  human_input: true\n"
    )
    (project / "crews" / "ask.yaml").write_text("description: ask\nagents: [writer]\ntasks: [draft]\ninputs: [topic]\n")
    answers = tmp_path / "answers.yaml"
    answers.write_text("# what the reviewer would type\ndraft:\n  - mention that they sleep\n")
    fake.add(task="Draft a line about", times=1, text="Otters hold hands.")
    fake.add(contains="mention that they sleep", times=1, text="Otters hold hands while they sleep.")
    result = cli("run", "ask", "-i", "topic=otters", "--base-url", fake.url, "--answers", str(answers), "--quiet")
    assert result.code == 0, result.err
    assert result.out.strip() == "Otters hold hands while they sleep."
    assert len([r for r in fake.chat_requests if "mention that they sleep" in r["text"]]) == 1
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    given = [e["data"] for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "feedback_given"]
    assert given == [{"task": "draft", "feedback": "mention that they sleep"}, {"task": "draft", "feedback": ""}]

    answers.write_text("draft: []\nreview: tighten it\n")
    calls = len(fake.chat_requests)
    result = cli("run", "ask", "-i", "topic=otters", "--base-url", fake.url, "--answers", str(answers))
    assert result.code == 2 and f"{answers}:2: task 'review' does not ask for feedback in this crew; the tasks that do: draft" in result.err
    assert len(fake.chat_requests) == calls
