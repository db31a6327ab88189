"""A project made by `crewai create crew` (the installed template), run where it lives: its YAML is its crew."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import killed_at, resumed_without_repeats


def test_a_crewai_template_project_runs_at_its_root_with_its_own_yaml(cli, fake, template_project):
    listed = {c["name"]: c for c in cli("crews", "list", "--json").json()}
    assert [i["name"] for i in listed["latest_ai"]["inputs"]] == ["topic", "current_year"]
    assert cli("validate").code == 0
    result = cli("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["crew"] == "latest_ai" and [(t["task"], t["agent"]) for t in doc["tasks"]] == [
        ("research_task", "researcher"),
        ("reporting_task", "reporting_analyst"),
    ]
    first = next(r for r in fake.chat_requests if "Conduct a thorough research about otters" in r["text"])
    assert "otters Senior Data Researcher" in first["text"] and "the current year is 2026" in first["text"]
    packaged = cli("run", "research", "-i", "topic=owls", "--dry-run", "--json", "--base-url", fake.url)
    assert packaged.code == 0 and packaged.json()["tasks"][0]["agent"] == "research_specialist"  # the packaged crews are as they were


def test_a_missing_input_of_the_template_is_named_before_any_model_call(cli, fake, template_project):
    result = cli("run", "-i", "topic=otters", "--base-url", fake.url)
    assert result.code == 2 and "current_year" in result.err and "Traceback" not in result.err
    assert fake.chat_requests == []


CREW_PY = '''
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, before_kickoff, crew, task
from crewai.tools import tool


@tool("count_letters")
def count_letters(word: str) -> str:
    """Count the letters of a word."""
    return f"{word} has {len(word)} letters"


@CrewBase
class LatestAi:
    agents: list
    tasks: list

    @before_kickoff
    def shout(self, inputs):
        inputs["topic"] = inputs["topic"].upper()
        return inputs

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], tools=[count_letters])

    @agent
    def reporting_analyst(self) -> Agent:
        return Agent(config=self.agents_config["reporting_analyst"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @task
    def reporting_task(self) -> Task:
        return Task(config=self.tasks_config["reporting_task"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
'''


def test_the_project_s_crew_py_builds_its_crew_with_its_python_tool_and_hook_and_a_kill_resumes_it(cli, fake, template_project, isolated):
    (template_project / "src" / "latest_ai" / "crew.py").write_text(CREW_PY)
    fake.add(task="Conduct a thorough research", times=1, tool_calls=[{"name": "count_letters", "arguments": {"word": "otters"}}])
    fake.add(task="Conduct a thorough research", times=1, text="Otters: 6 letters, and they hold hands.")
    fake.add(task="Review the context you got", times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    fake.add(task="Review the context you got", times=1, text="# Otter report")
    killed_at(fake, isolated, "Review the context", "run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--quiet", cwd=Path.cwd())
    research = [r for r in fake.chat_requests if "Conduct a thorough research" in r["task"]]
    assert "Conduct a thorough research about OTTERS" in research[0]["text"]  # crew.py's @before_kickoff hook ran
    assert "otters has 6 letters" in research[1]["text"]  # its Python tool was called, and its answer reached the model
    doc = resumed_without_repeats(cli, fake, "Conduct a thorough research", 2)
    assert doc["output"] == "# Otter report" and [t["status"] for t in doc["tasks"]] == ["completed", "completed"]


def test_a_crew_py_that_builds_fewer_tasks_than_its_yaml_runs_those_it_builds_as_crewai_run_does(cli, fake, template_project):
    crew_py = template_project / "src" / "latest_ai" / "crew.py"
    crew_py.write_text(
        CREW_PY.replace(
            """    @task
    def reporting_task(self) -> Task:
        return Task(config=self.tasks_config["reporting_task"])
""",
            "",
        )
    )
    result = cli("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    assert [t["task"] for t in result.json()["tasks"]] == ["research_task"]
    assert not [r for r in fake.chat_requests if "Review the context" in r["task"]]


PUBLIC_STYLE_CREW_PY = """
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task
from pydantic import BaseModel


class Brief(BaseModel):
    title: str
    points: list[str]


@CrewBase
class LatestAi:
    agents: list
    tasks: list

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], verbose=True)

    @agent
    def reporting_analyst(self) -> Agent:
        return Agent(config=self.agents_config["reporting_analyst"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @task
    def reporting_task(self) -> Task:
        return Task(config=self.tasks_config["reporting_task"], output_pydantic=Brief)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential, verbose=True)
"""


def test_a_public_style_crew_py_keeps_its_output_model_context_and_per_agent_llm(cli, fake, template_project):
    """As the public examples write it: the output model set in Python, context and an agent's llm in the YAML."""
    package = template_project / "src" / "latest_ai"
    (package / "crew.py").write_text(PUBLIC_STYLE_CREW_PY)
    agents = package / "config" / "agents.yaml"
    agents.write_text(agents.read_text().replace("reporting_analyst:\n", "reporting_analyst:\n  llm: openai/gpt-4o-mini\n", 1))
    tasks = package / "config" / "tasks.yaml"
    tasks.write_text(tasks.read_text() + "  context: [research_task]\n")
    fake.add(task="Conduct a thorough research", times=1, text="Otters hold hands; otters use tools.")
    fake.add(task="Review the context you got", times=1, text='{"title": "Otters", "points": ["hold hands", "use tools"]}')
    result = cli("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    report = next(r for r in fake.chat_requests if "Review the context you got" in r["task"])
    assert "Otters hold hands; otters use tools." in report["text"] and report["model"] == "gpt-4o-mini"
    assert '"points"' in report["text"]  # CrewAI told the model the output model's schema
    assert json.loads(result.json()["output"]) == {"title": "Otters", "points": ["hold hands", "use tools"]}


@pytest.mark.memory_on
def test_a_project_that_asks_for_no_memory_gets_none_and_one_that_asks_gets_the_shared_one(cli, fake, template_project):
    """The template's crew.py sets no memory: under mamabear, as under `crewai run`, its agents get no memory tools and
    no recall. memory.yaml's `projects: always` gives every project's crew the shared memory."""
    run = ["run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet"]
    plain = cli(*run)
    assert plain.code == 0, plain.err
    assert len(fake.chat_requests) == 2  # one call per task, as plain CrewAI makes
    assert not any("memory" in json.dumps(r["body"].get("tools", [])) for r in fake.chat_requests)
    assert plain.json()["memory"] == {"saved": [], "recalled": []}
    Path("config").mkdir(exist_ok=True)
    Path("config/memory.yaml").write_text("projects: always\n")
    fake.reset()
    shared = cli(*run, "--no-cache")
    assert shared.code == 0, shared.err
    assert any("search_memory" in json.dumps(r["body"].get("tools", [])) for r in fake.chat_requests)
