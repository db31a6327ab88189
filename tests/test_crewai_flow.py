"""A project `crewai create flow` makes (the installed template), run where it lives: its Flow is the run, each
method a step, the crew a method starts routed and recorded, a kill resumed with nothing done asked again."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import killed_at, resumed_without_repeats, start_mamabear, store_for, wait_for

PLAN, WRITE, EDIT = "Create a detailed outline for a blog post about", "Using the outline provided, write", "Review and edit the blog post"


@pytest.fixture
def flow_project(isolated, monkeypatch, tmp_path) -> Path:  # noqa: ANN001
    """`crewai create flow "otter flow"`, with its first method keeping a topic given at kickoff (the template sets
    its own unless a trigger payload gives one)."""
    from crewai_cli.create_flow import create_flow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CREWAI_DMN", "1")
    create_flow("otter flow")
    root = tmp_path / "otter_flow"
    main = root / "src" / "otter_flow" / "main.py"
    text = main.read_text()
    assert 'self.state.topic = "AI Agents"' in text  # the template as this test knows it
    main.write_text(text.replace('self.state.topic = "AI Agents"', 'self.state.topic = self.state.topic or "AI Agents"'))
    monkeypatch.chdir(root)
    return root


ROWS = [
    "plan_content",
    "generate_content",
    "generate_content/planning_task",
    "generate_content/writing_task",
    "generate_content/editing_task",
    "save_content",
]


def test_a_crewai_create_flow_project_runs_with_each_method_a_step_and_its_crew_routed_and_recorded(cli, fake, flow_project, isolated):
    dry = cli("run", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert dry.code == 0, dry.err
    plan = dry.json()
    assert plan["process"] == "flow" and plan["inputs"] == {"topic": "otters"}
    assert plan["notes"][-3:] == [
        "flow method plan_content (@start)",
        "flow method generate_content (@listen): starts ContentCrew",
        "flow method save_content (@listen)",
    ]
    fake.add(task=EDIT, text="# Otters\nThey hold hands.")
    result = cli("run", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()  # stdout is the result alone
    assert [(t["task"], t["status"]) for t in doc["tasks"]] == [(r, "completed") for r in ROWS]
    assert "Planning content" in result.err and "Post saved to output/post.md" in result.err  # what the flow prints is shown
    agents = ["content_planner", "content_writer", "content_editor"]  # its crew's agents, by their roles
    assert [t["agent"] for t in doc["tasks"]] == [None, None, *agents, None]
    assert (flow_project / "output" / "post.md").read_text() == "# Otters\nThey hold hands."  # its last method ran, as written
    assert [r["task"].removeprefix("Current Task: ")[:20] for r in fake.chat_requests] == [PLAN[:20], WRITE[:20], EDIT[:20]]
    assert "blog post about otters" in fake.chat_requests[0]["text"]  # the input became the flow's state
    calls = store_for(isolated).llm_calls(doc["run_id"])
    assert [(c["agent"], c["outcome"]) for c in calls] == [(a, "ok") for a in agents], calls  # each call recorded, on its agent
    started = [e["message"] for e in cli("runs", "logs", doc["run_id"], "--json").json() if e["kind"] == "task_started"]
    assert started[:3] == [
        "task 1/1 plan_content started (flow method)",
        "task 2/2 generate_content started (flow method)",
        "task 3/5 generate_content/planning_task started (content_planner)",
    ], started  # a method runs on no manager


def test_a_flow_killed_in_its_crew_resumes_with_no_finished_method_or_task_done_again(cli, fake, flow_project, isolated):
    fake.add(task=WRITE, times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    killed_at(fake, isolated, WRITE, "run", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=flow_project)
    doc = resumed_without_repeats(cli, fake, PLAN, 1)  # the outline, answered before the kill, is not asked for again
    assert [(t["task"], t["status"]) for t in doc["tasks"]] == [(r, "completed") for r in ROWS]  # no row twice
    assert len([r for r in fake.chat_requests if WRITE in r["task"]]) == 2  # the task cut short, asked again
    events = cli("runs", "logs", doc["run_id"], "--json").json()
    resumed = [e for e in events if e["kind"] == "flow_resumed"]
    assert len(resumed) == 1 and "after 1 finished method(s): plan_content" in resumed[0]["message"], resumed
    assert (flow_project / "output" / "post.md").is_file()


ROUTED_MAIN = """
from pydantic import BaseModel

from crewai.flow import Flow, listen, persist, router, start

from otter_flow.crews.content_crew.content_crew import ContentCrew


class OtterState(BaseModel):
    topic: str = ""
    size: int = 0
    post: str = ""


@persist()
class OtterFlow(Flow[OtterState]):
    @start()
    def measure(self):
        self.state.size = len(self.state.topic)

    @router(measure)
    def by_size(self):
        return "long" if self.state.size > 4 else "short"

    @listen("long")
    def write_long(self):
        self.state.post = ContentCrew().crew().kickoff(inputs={"topic": self.state.topic}).raw

    @listen("short")
    def write_short(self):
        self.state.post = "short topic, no post"

    @listen(write_long)
    def publish(self):
        return self.state.post.upper()


def kickoff():
    OtterFlow().kickoff()
"""


def test_a_flow_with_a_router_and_persist_resumes_down_the_branch_it_took(cli, fake, flow_project, isolated):
    (flow_project / "src" / "otter_flow" / "main.py").write_text(ROUTED_MAIN)
    dry = cli("run", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert "flow method by_size (@router)" in dry.json()["notes"] and "flow method write_long (@listen): starts ContentCrew" in dry.json()["notes"]
    fake.add(task=EDIT, times=1, delay=60, text="never seen")
    fake.add(task=EDIT, times=1, text="otters hold hands")
    killed_at(fake, isolated, EDIT, "run", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=flow_project)
    doc = resumed_without_repeats(cli, fake, WRITE, 1)
    assert doc["output"] == "OTTERS HOLD HANDS"  # the state the router read, restored: its branch taken again
    rows = [(t["task"], t["status"]) for t in doc["tasks"]]
    assert rows == [
        ("measure", "completed"),
        ("by_size", "completed"),
        ("write_long", "completed"),
        ("write_long/planning_task", "completed"),
        ("write_long/writing_task", "completed"),
        ("write_long/editing_task", "completed"),
        ("publish", "completed"),
    ], rows
    assert len([r for r in fake.chat_requests if PLAN in r["task"]]) == 1


def test_a_broken_flow_project_is_one_sentence_before_any_model_call(cli, fake, flow_project):
    main = flow_project / "src" / "otter_flow" / "main.py"
    main.write_text(main.read_text().replace("from pydantic import BaseModel", "from pydantic import BaseModel\nimport no_such_module"))
    for command in (["validate"], ["run", "--dry-run"], ["run", "--base-url", fake.url]):
        result = cli(*command)
        assert result.code == 2 and "importing the flow's module otter_flow.main failed: ModuleNotFoundError" in result.err, (command, result.err)
        assert "Traceback" not in result.err
    assert fake.chat_requests == []
    # two Flow classes: the one its kickoff() makes is the run's; with no kickoff() to tell, one sentence
    main.write_text(
        main.read_text().replace("import no_such_module", "").replace("def kickoff():", "class OtherFlow(ContentFlow):\n    pass\n\n\ndef kickoff():")
    )
    dry = cli("run", "--dry-run", "--json", "--base-url", fake.url)
    assert dry.code == 0 and "flow method generate_content (@listen): starts ContentCrew" in dry.json()["notes"], dry.err
    main.write_text(main.read_text().replace("content_flow = ContentFlow()\n    content_flow.kickoff()", "pass"))
    result = cli("run", "--dry-run", "--base-url", fake.url)
    assert result.code == 2 and "it defines ContentFlow, OtherFlow" in result.err and "Traceback" not in result.err, result.err


def test_at_a_terminal_a_flow_shows_its_steps_and_ctrl_c_stops_it_for_a_resume(fake, flow_project, isolated, cli):
    import sys
    import time

    import pexpect

    from conftest import subprocess_env
    from test_terminal import assert_clean, finish

    env = subprocess_env(MAMABEAR_HOME=str(isolated), TERM="xterm-256color", COLUMNS="160", LINES="40")
    env.pop("NO_COLOR", None)

    def spawn(*args: str) -> pexpect.spawn:
        command = [sys.executable, "-m", "mamabear", *args, "--base-url", fake.url]
        return pexpect.spawn(command[0], command[1:], env=env, cwd=str(flow_project), dimensions=(40, 160), encoding="utf-8", timeout=120)

    fake.add(task=WRITE, times=1, delay=60, text="never seen")
    child = spawn("run", "-i", "topic=otters")
    deadline = time.monotonic() + 90
    while not [r for r in fake.chat_requests if WRITE in r["task"]] and time.monotonic() < deadline:
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.2)
    child.sendintr()
    code, text = finish(child)
    assert code == 130, text
    assert_clean(text)
    assert "generate_content/planning_task" in text and "Planning content" in text  # its steps, and what it printed
    assert ": interrupted" in text and "mamabear resume" in text
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    code, text = finish(spawn("resume", run_id))
    assert code == 0, text
    assert_clean(text)
    assert "generate_content/editing_task" in text and "completed" in text
    assert len([r for r in fake.chat_requests if PLAN in r["task"]]) == 1


AGENT_MAIN = """
from crewai import Agent
from crewai.flow import Flow, listen, start


class PoemFlow(Flow[dict]):
    @start()
    def pick(self):
        self.state["animal"] = self.state.get("animal") or "otters"

    @listen(pick)
    def write(self):
        poet = Agent(role="Otter Poet", goal="Write short poems", backstory="Loves rivers.", llm="gpt-4o")
        return poet.kickoff(f"Write a haiku about {self.state['animal']}.").raw


def kickoff():
    PoemFlow().kickoff()
"""


def test_an_agent_a_flow_runs_alone_is_routed_and_its_calls_recorded_in_its_method_s_row(cli, fake, flow_project, isolated):
    (flow_project / "src" / "otter_flow" / "main.py").write_text(AGENT_MAIN)
    fake.add(contains="Write a haiku about otters", text="Otters hold paws / the river keeps them / close")
    result = cli("run", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["output"] == "Otters hold paws / the river keeps them / close"
    assert "gpt-4o" not in {r["model"] for r in fake.chat_requests}  # its llm= is routed, as every agent's
    calls = store_for(isolated).llm_calls(doc["run_id"])
    rows = {t["position"]: t["task"] for t in doc["tasks"]}
    assert [(c["agent"], rows[c["task_position"]], c["outcome"]) for c in calls] == [("otter_poet", "write", "ok")], calls


TWICE_MAIN = """
import asyncio
from enum import Enum

from crewai import Agent
from crewai.flow import Flow, listen, router, start

from otter_flow.crews.content_crew.content_crew import ContentCrew


class Size(str, Enum):
    LONG = "long"
    SHORT = "short"


class TwiceFlow(Flow[dict]):
    @start()
    def twice(self):
        first = ContentCrew().crew().kickoff(inputs={"topic": "otters"}).raw
        return first + " / " + ContentCrew().crew().kickoff(inputs={"topic": "beavers"}).raw

    @router(twice)
    def size(self):
        return Size.LONG

    @listen(Size.LONG.value)
    async def poem(self):
        poet = Agent(role="Otter Poet", goal="Write short poems", backstory="Loves rivers.", llm="gpt-4o")
        return (await poet.kickoff_async("Write a haiku about otters.")).raw


def kickoff():
    TwiceFlow().kickoff()
"""


def test_a_method_that_starts_its_crew_twice_and_an_async_agent_resume_with_nothing_answered_asked_again(cli, fake, flow_project, isolated):
    (flow_project / "src" / "otter_flow" / "main.py").write_text(TWICE_MAIN)
    beavers, haiku = "write a full blog post about beavers", "Write a haiku about otters"
    fake.add(task=beavers, times=1, delay=60, text="never seen")
    killed_at(fake, isolated, beavers, "run", "--base-url", fake.url, "--quiet", cwd=flow_project)
    fake.add(contains=haiku, times=1, delay=60, text="never seen")
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    before = len([r for r in fake.chat_requests if haiku in r["text"]])
    proc = start_mamabear(isolated, "resume", run_id, "--base-url", fake.url, "--quiet", cwd=flow_project)
    try:  # the resume killed in turn, once its async agent has asked for the haiku
        wait_for(lambda: len([r for r in fake.chat_requests if haiku in r["text"]]) > before, what="the haiku's first call")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    fake.add(contains=haiku, text="Otters hold paws")
    doc = resumed_without_repeats(cli, fake, "outline for a blog post about beavers", 1)
    assert doc["status"] == "completed" and doc["output"] == "Otters hold paws"  # the router's Enum outcome, replayed
    assert len([r for r in fake.chat_requests if "outline for a blog post about otters" in r["task"]]) == 1
    assert len([r for r in fake.chat_requests if beavers in r["task"]]) == 2  # the task cut short, asked again, once
    crew = ["planning_task", "writing_task", "editing_task"]
    rows = [(t["task"], t["status"]) for t in doc["tasks"]]
    assert rows == [
        ("twice", "completed"),
        *[(f"twice/{t}", "completed") for t in crew],
        *[(f"twice (crew 2)/{t}", "completed") for t in crew],
        ("size", "completed"),
        ("poem", "completed"),
    ], rows
    calls = store_for(isolated).llm_calls(doc["run_id"])
    positions = {t["position"]: t["task"] for t in doc["tasks"]}
    assert ("otter_poet", "poem") in {(c["agent"], positions[c["task_position"]]) for c in calls}  # the async agent, routed
    assert "gpt-4o" not in {r["model"] for r in fake.chat_requests}


CYCLE_MAIN = """
from crewai.flow import Flow, listen, router, start

from otter_flow.crews.content_crew.content_crew import ContentCrew


class CycleFlow(Flow[dict]):
    @start("again")
    def draft(self):
        self.state["rounds"] = self.state.get("rounds", 0) + 1
        return ContentCrew().crew().kickoff(inputs={"topic": f"otters round {self.state['rounds']}"}).raw

    @router(draft)
    def enough(self):
        return "done" if self.state["rounds"] >= 3 else "again"


def kickoff():
    CycleFlow().kickoff()
"""


def test_a_cycle_resumes_in_its_pass_and_a_flow_only_at_its_own_root_and_one_cut_short_past_a_pass_or_queued_is_refused(
    cli, fake, flow_project, isolated, tmp_path, monkeypatch
):
    (flow_project / "src" / "otter_flow" / "main.py").write_text(CYCLE_MAIN)
    outline = "outline for a blog post about otters round {}"
    fake.add(task=outline.format(2), times=1, delay=60, text="never seen")
    killed_at(fake, isolated, outline.format(2), "run", "--base-url", fake.url, "--quiet", cwd=flow_project)
    doc = resumed_without_repeats(cli, fake, outline.format(1), 1)  # the router's outcome replayed once: the cycle goes on
    assert doc["status"] == "completed" and len([r for r in fake.chat_requests if outline.format(4) in r["task"]]) == 0
    assert [t["task"] for t in doc["tasks"] if "/" not in t["task"]] == ["draft", "enough", "draft (2)", "enough (2)", "draft (3)", "enough (3)"]

    fake.reset()  # a second run, cut short in its third pass
    fake.add(task=outline.format(3), times=1, delay=60, text="never seen")
    killed_at(fake, isolated, outline.format(3), "run", "--base-url", fake.url, "--quiet", "--no-cache", cwd=flow_project)  # asked afresh
    run_id = next(r["id"] for r in cli("runs", "list", "--json").json() if r["id"] != doc["run_id"])
    calls = len(fake.chat_requests)
    refused = cli("resume", run_id, "--base-url", fake.url)
    assert refused.code == 2 and "ran the flow method draft, enough more than once (a cycle)" in refused.err and "Traceback" not in refused.err, refused.err
    monkeypatch.setenv("MAMABEAR_BROKER_URL", "redis://127.0.0.1:9/0")  # refused before any broker is reached
    queued = cli("run", "--queue", "default", "--base-url", fake.url)
    assert queued.code == 2 and "is a CrewAI flow, whose project a worker cannot find yet" in queued.err, queued.err
    other = tmp_path / "other_flow"
    (other / "src" / "other_flow").mkdir(parents=True)
    (other / "pyproject.toml").write_text(
        '[project]\nname = "other_flow"\n[project.scripts]\nkickoff = "other_flow.main:kickoff"\n'
    )  # a flow from before [tool.crewai]
    (other / "src" / "other_flow" / "main.py").write_text(CYCLE_MAIN)
    import os

    os.chdir(other)
    elsewhere = cli("resume", run_id, "--base-url", fake.url)
    assert elsewhere.code == 2 and "this is the root of the flow other_flow" in elsewhere.err, elsewhere.err
    assert len(fake.chat_requests) == calls and cli("runs", "show", run_id, "--json").json()["status"] == "interrupted"


ASKING_MAIN = """
from crewai.flow import Flow, human_feedback, listen, start


class ReviewFlow(Flow[dict]):
    @start()
    @human_feedback(message="Is this draft about otters good?")
    def draft(self):
        return "otters hold hands"

    @listen(draft)
    def sign(self):
        who = self.ask("Who signs it?")
        print(f"signed by {who}")
        return who


def kickoff():
    ReviewFlow().kickoff()
"""


def test_a_flow_that_asks_a_person_asks_at_a_terminal_and_is_refused_without_one(cli, fake, flow_project, isolated):
    import sys

    import pexpect

    from conftest import subprocess_env
    from test_terminal import assert_clean, finish

    (flow_project / "src" / "otter_flow" / "main.py").write_text(ASKING_MAIN)
    dry = cli("run", "--dry-run", "--json", "--base-url", fake.url)
    assert dry.code == 0 and "flow method draft (@start), asks a person" in dry.json()["notes"], dry.err
    piped = cli("run", "--base-url", fake.url)  # stdin is no terminal: the question would wait for ever
    assert piped.code == 2 and "flow method 'draft' asks a person" in piped.err and "Traceback" not in piped.err, piped.err
    assert cli("runs", "list", "--json").json() == []  # refused before a run began
    env = subprocess_env(MAMABEAR_HOME=str(isolated), TERM="xterm-256color", COLUMNS="160", LINES="40")
    command = [sys.executable, "-m", "mamabear", "run", "--base-url", fake.url]
    child = pexpect.spawn(command[0], command[1:], env=env, cwd=str(flow_project), dimensions=(40, 160), encoding="utf-8", timeout=120)
    child.expect("Is this draft about otters good")  # the question is shown, not hidden under a live table
    child.expect("Your feedback:")
    child.sendline("")
    child.expect("Who signs it")
    child.sendline("Mama Bear")
    code, text = finish(child)
    assert code == 0, text
    assert_clean(text)
    assert "signed by Mama Bear" in text and "flow method sign finished" in text  # plain progress lines, no live table
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    said = [e["message"] for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "run_started"]
    assert said == [f"run {run_id} started: the CrewAI flow otter_flow"], said
    assert fake.chat_requests == []  # nothing here asks a model
