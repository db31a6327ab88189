"""CrewAI projects in the styles public ones are written in, run as they are: the plan is the crew crew.py builds.

Each style is run end to end against the scripted model server, killed mid-run and resumed, with the server's own
request log counting what the resume asked again."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import killed_at, resumed_without_repeats, store_for

# tasks.yaml with no `agent:` lines: crew.py gives each task its agent (9 of the 31 public projects tried)
AGENTS_YAML = """researcher:
  role: Otter Researcher
  goal: Find facts about {topic}
  backstory: Reads field notes.
  model: gpt-4o   # a key CrewAI takes and mamabear does not read
reporter:
  role: Otter Reporter
  goal: Write about {topic}
  backstory: Writes plainly.
"""
TASKS_YAML = """research_task:
  description: Research {topic} in the field notes.
  expected_output: Three facts.
report_task:
  description: Write the report on {topic}.
  expected_output: One paragraph.
"""
ASSIGNED_CREW_PY = '''
from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task
from crewai.tools import tool


@tool("count_letters")
def count_letters(word: str) -> str:
    """Count the letters of a word."""
    return f"{word} has {len(word)} letters"


@CrewBase
class Otters:
    agents: list
    tasks: list

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], tools=[count_letters])

    @agent
    def reporter(self) -> Agent:
        return Agent(config=self.agents_config["reporter"])

    @agent
    def editor(self) -> Agent:  # made in Python alone: no YAML entry
        return Agent(role="Copy Editor", goal="Tidy the report on {topic}", backstory="Cuts words.")

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"], agent=self.researcher())

    @task
    def report_task(self) -> Task:
        return Task(config=self.tasks_config["report_task"], agent=self.reporter())

    @task
    def edit_task(self) -> Task:  # made in Python alone
        return Task(description="Edit the report on {topic}.", expected_output="The report, shorter.", agent=self.editor())

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
'''
HIERARCHICAL_CREW_PY = """
from crewai import LLM, Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task


@CrewBase
class Otters:
    agents: list
    tasks: list

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"])

    @agent
    def reporter(self) -> Agent:
        return Agent(config=self.agents_config["reporter"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @task
    def report_task(self) -> Task:
        return Task(config=self.tasks_config["report_task"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.hierarchical, manager_llm=LLM(model="gpt-4o"))
"""


def otters_project(root: Path, crew_py: str) -> Path:
    package = root / "src" / "otters"
    (package / "config").mkdir(parents=True)
    (package / "config" / "agents.yaml").write_text(AGENTS_YAML)
    (package / "config" / "tasks.yaml").write_text(TASKS_YAML)
    (package / "crew.py").write_text(crew_py)
    (package / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "otters"\n\n[tool.crewai]\ntype = "crew"\n')
    return root


def test_tasks_given_their_agents_in_crew_py_run_in_its_order_and_a_kill_resumes_them(cli, fake, isolated, monkeypatch, tmp_path):
    root = otters_project(tmp_path / "otters", ASSIGNED_CREW_PY)
    monkeypatch.chdir(root)
    listed = {c["name"]: c for c in cli("crews", "list", "--json").json()}
    assert [i["name"] for i in listed["otters"]["inputs"]] == ["topic"]
    checked = cli("validate")
    assert checked.code == 0 and "mamabear does not read 'model' of agent 'researcher'" in checked.err, checked.err

    dry = cli("run", "-i", "topic=otters", "-i", "year=2026", "--dry-run", "--json", "--base-url", fake.url)
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert [(t["id"], t["agent"]) for t in plan["tasks"]] == [("research_task", "researcher"), ("report_task", "reporter"), ("edit_task", "copy_editor")]
    assert next(a for a in plan["agents"] if a["id"] == "researcher")["tools"] == ["count_letters"]  # made in Python, named
    assert any("uses no input 'year'" in w for w in plan["warnings"]) and any("built by its crew.py in" in n for n in plan["notes"])
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    (root / "src" / "otters" / "crew.py").write_text(
        ASSIGNED_CREW_PY.replace("tools=[count_letters]", "tools=[count_letters, SerperDevTool()]").replace(
            "from crewai.tools import tool", "from crewai.tools import tool\nfrom crewai_tools import SerperDevTool"
        )
    )
    keyless = cli("run", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url).json()
    assert any("needs SERPER_API_KEY" in w and "agent 'researcher'" in w for w in keyless["warnings"]), keyless["warnings"]
    (root / "src" / "otters" / "crew.py").write_text(ASSIGNED_CREW_PY)
    assert fake.chat_requests == []

    fake.add(task="Research otters", times=1, text="Otters hold hands.")
    fake.add(task="Write the report on otters", times=1, text="The otter report.")
    fake.add(task="Edit the report on otters", times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    fake.add(task="Edit the report on otters", times=1, text="Otters: they hold hands.")
    killed_at(fake, isolated, "Edit the report", "run", "-i", "topic=otters", "-i", "year=2026", "--base-url", fake.url, "--quiet", cwd=root)
    asked = {r["task"].removeprefix("Current Task: ").split()[0]: r["text"] for r in fake.chat_requests}
    assert "Otter Researcher" in asked["Research"] and "Copy Editor" in asked["Edit"]  # each task on the agent crew.py gave it
    doc = resumed_without_repeats(cli, fake, "Write the report on otters", 1)
    assert doc["output"] == "Otters: they hold hands." and [(t["task"], t["agent"], t["status"]) for t in doc["tasks"]] == [
        ("research_task", "researcher", "completed"),
        ("report_task", "reporter", "completed"),
        ("edit_task", "copy_editor", "completed"),
    ]
    assert len([r for r in fake.chat_requests if "Research otters" in r["task"]]) == 1


def test_a_hierarchical_crew_built_in_crew_py_runs_with_its_manager_routed_and_recorded(cli, fake, isolated, monkeypatch, tmp_path):
    root = otters_project(tmp_path / "otters", HIERARCHICAL_CREW_PY)
    monkeypatch.chdir(root)
    dry = cli("run", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert plan["process"] == "hierarchical" and plan["manager"] == "crew_manager" and [t["agent"] for t in plan["tasks"]] == [None, None]
    delegate = {"task": "Find three otter facts", "context": "Field notes on otters.", "coworker": "Otter Researcher"}
    fake.add(task="Research otters", times=1, tool_calls=[{"name": "delegate_work_to_coworker", "arguments": delegate}])
    fake.add(task="Find three otter facts", times=1, text="Otters hold hands, float, and use stones.")
    fake.add(task="Research otters", times=1, text="Otters hold hands.")
    fake.add(task="Write the report on otters", times=1, delay=60, text="never seen")
    fake.add(task="Write the report on otters", times=1, text="The otter report.")
    killed_at(fake, isolated, "Write the report", "run", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=root)
    assert "gpt-4o" not in {r["model"] for r in fake.chat_requests}  # the manager's manager_llm is routed as every agent's model
    doc = resumed_without_repeats(cli, fake, "Research otters", 2)  # the manager delegated, then answered
    assert doc["output"] == "The otter report." and [t["status"] for t in doc["tasks"]] == ["completed", "completed"]
    assert "Otter Researcher" in next(r["text"] for r in fake.chat_requests if "Find three otter facts" in r["task"])  # delegated to
    calls = store_for(isolated).llm_calls(doc["run_id"])
    assert len(calls) == len(fake.chat_requests) == 5, calls  # every call recorded, the killed one too
    assert [c["agent"] for c in calls if c["outcome"] == "ok"] == ["crew_manager", "researcher", "crew_manager", "crew_manager"], calls


def test_a_script_style_project_is_one_sentence_and_its_config_is_not_taken_for_mamabear_s(cli, fake, isolated, monkeypatch, tmp_path):
    root = tmp_path / "script_crew"
    (root / "config").mkdir(parents=True)
    (root / "config" / "agents.yaml").write_text(AGENTS_YAML)  # read by its own script, as CrewAI's YAML
    (root / "main.py").write_text("from crewai import Crew\n# builds its agents and crew here, then crew.kickoff()\n")
    monkeypatch.chdir(root)
    result = cli("run", "--base-url", fake.url)
    assert result.code == 2 and "builds and starts its crew in its own script" in result.err and "Traceback" not in result.err
    assert "Otter Researcher" not in cli("agents", "list").out  # not merged into mamabear's catalog
    nothing = tmp_path / "nothing_here"
    nothing.mkdir()
    monkeypatch.chdir(nothing)
    empty = cli("run", "--base-url", fake.url)
    assert empty.code == 2 and "is neither a CrewAI project nor one of mamabear's" in empty.err
    assert fake.chat_requests == []


def test_an_mcp_server_crew_py_names_that_cannot_be_reached_is_a_warning_and_the_run_goes_on(cli, fake, isolated, monkeypatch, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    crew_py = ASSIGNED_CREW_PY.replace(
        'return Agent(config=self.agents_config["reporter"])', f'return Agent(config=self.agents_config["reporter"], mcps=["https://127.0.0.1:{port}/mcp"])'
    )
    root = otters_project(tmp_path / "otters", crew_py)
    monkeypatch.chdir(root)
    result = cli("run", "-i", "topic=otters", "--base-url", fake.url, "--json")
    assert result.code == 0, result.err
    events = cli("runs", "logs", result.json()["run_id"], "--json").json()
    failed = [e["message"] for e in events if e["kind"] == "mcp_failed"]
    assert failed and f"the MCP server https://127.0.0.1:{port}/mcp of agent Otter Reporter" in failed[0] and "could not be reached" in failed[0], [
        e["kind"] for e in events
    ]


OUTPUT_JSON_CREW_PY = """
from pydantic import BaseModel

from crewai import Agent, Crew, Process, Task
from crewai.project import CrewBase, agent, crew, task


class Facts(BaseModel):
    facts: list[str]


@CrewBase
class Otters:
    agents: list
    tasks: list

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"])

    @agent
    def reporter(self) -> Agent:
        return Agent(config=self.agents_config["reporter"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"], agent=self.researcher())

    @task
    def report_task(self) -> Task:
        return Task(config=self.tasks_config["report_task"], agent=self.reporter(), output_json=Facts)

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
"""


def test_an_output_json_crew_killed_mid_run_resumes_to_an_answer_that_fits_its_model(cli, fake, isolated, monkeypatch, tmp_path):
    root = otters_project(tmp_path / "otters", OUTPUT_JSON_CREW_PY)
    monkeypatch.chdir(root)
    fake.add(task="Research otters", times=1, text="Otters hold hands.")
    fake.add(task="Write the report on otters", times=1, delay=60, text="never seen")
    fake.add(task="Write the report on otters", schema=True)  # the least its schema takes, as a terse model answers
    killed_at(fake, isolated, "Write the report", "run", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=root)
    doc = resumed_without_repeats(cli, fake, "Research otters", 1)
    assert isinstance(json.loads(doc["output"])["facts"], list), doc["output"]
    assert [t["status"] for t in doc["tasks"]] == ["completed", "completed"]
