"""A project in CrewAI's JSON layout, made by the installed `crewai create crew` (crew.jsonc, agents/*.jsonc, tools/),
run where it lives: CrewAI's own loader builds its crew, mamabear routes, records and resumes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import killed_at, resumed_without_repeats

LETTERS_TOOL = """
from crewai.tools import BaseTool


class LettersTool(BaseTool):
    name: str = "count_letters"
    description: str = "Count the letters of a word."

    def _run(self, word: str) -> str:
        return f"{word} has {len(word)} letters"
"""

EDITOR = {
    "role": "Otter Editor",
    "goal": "Turn findings about {topic} into a short brief.",
    "backstory": "You edit briefs.",
    "llm": {"model": "gpt-4o-mini", "provider": "openai"},
    "settings": {"allow_delegation": False},
}


@pytest.fixture
def json_project(isolated, monkeypatch, tmp_path) -> Path:  # noqa: ANN001
    """What `crewai create crew "otter brief"` writes (non-interactive), then edited as its README says: a {topic}, a
    default for it, a custom tool in tools/, a second agent and a task that takes the first one's output as context."""
    from crewai_cli.create_json_crew import create_json_crew

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CREWAI_DMN", "1")
    create_json_crew("otter brief")
    root = tmp_path / "otter_brief"
    crew_file = root / "crew.jsonc"
    text = crew_file.read_text()
    assert '"agents": ["researcher"]' in text and '"inputs": {}' in text  # the template as this test knows it
    text = text.replace("Research current AI trends and write a concise summary.", "Research {topic} and write a concise summary.")
    text = text.replace('"agents": ["researcher"]', '"agents": ["researcher", "editor"]')
    text = text.replace('"inputs": {}', '"inputs": {"topic": "sea otters"}')
    brief = {
        "name": "brief_task",
        "description": "Write the brief about {topic}.",
        "expected_output": "A brief.",
        "agent": "editor",
        "context": ["research_task"],
    }
    text = text.replace("\n  ],\n", f",\n    {json.dumps(brief)}  // the editor's task\n  ],\n", 1)
    crew_file.write_text(text)
    researcher = root / "agents" / "researcher.jsonc"
    researcher.write_text(researcher.read_text().replace('"tools": []', '"tools": ["custom:letters"]'))
    (root / "agents" / "editor.jsonc").write_text(json.dumps(EDITOR, indent=2))
    (root / "tools" / "letters.py").write_text(LETTERS_TOOL)
    monkeypatch.chdir(root)
    return root


def test_a_crewai_json_project_runs_at_its_root_with_its_custom_tool_and_a_kill_resumes_it(cli, fake, json_project, isolated):
    listed = {c["name"]: c for c in cli("crews", "list", "--json").json()}
    assert listed["otter_brief"]["inputs"] == [{"name": "topic", "description": "", "required": False, "default": "sea otters"}]
    assert cli("validate").code == 0
    dry = cli("run", "--dry-run", "--json", "--base-url", fake.url).json()
    assert [(t["id"], t["agent"]) for t in dry["tasks"]] == [("research_task", "researcher"), ("brief_task", "editor")]
    fake.add(task="Research sea otters", times=1, tool_calls=[{"name": "count_letters", "arguments": {"word": "otters"}}])
    fake.add(task="Research sea otters", times=1, text="Sea otters: 6 letters, and they hold hands.")
    fake.add(task="Write the brief", times=1, delay=60, text="never seen")  # hangs: SIGKILL then
    fake.add(task="Write the brief", times=1, text="# Sea otter brief")
    killed_at(fake, isolated, "Write the brief", "run", "--base-url", fake.url, "--quiet", cwd=Path.cwd())
    research = [r for r in fake.chat_requests if "Research sea otters" in r["task"]]
    assert "otters has 6 letters" in research[1]["text"]  # its tools/letters.py was called, and its answer reached the model
    brief = next(r for r in fake.chat_requests if "Write the brief" in r["task"])
    assert "they hold hands" in brief["text"]  # the context the JSON names
    doc = resumed_without_repeats(cli, fake, "Research sea otters", 2)
    assert doc["output"] == "# Sea otter brief" and [t["status"] for t in doc["tasks"]] == ["completed", "completed"]
    models = {r["model"] for r in fake.chat_requests if "Write the brief" in r["task"]}
    assert models == {"gpt-4o-mini"}  # the editor's llm, in the object form


def test_a_broken_json_project_is_one_sentence_with_its_place_before_any_model_call(cli, fake, json_project):
    crew_file = json_project / "crew.jsonc"
    good = crew_file.read_text()
    crew_file.write_text(good.replace('"process": "sequential",', '"process": "sequential"'))  # a missing comma
    result = cli("run", "--base-url", fake.url)
    assert result.code == 2 and f"{crew_file}:" in result.err and "broken JSON" in result.err and "Traceback" not in result.err

    crew_file.write_text(good.replace('"process": "sequential"', '"process": "hierarchical"'))
    result = cli("run", "--base-url", fake.url)
    assert result.code == 2 and "only sequentially" in result.err and "Traceback" not in result.err

    crew_file.write_text(good)
    researcher = json_project / "agents" / "researcher.jsonc"
    template = researcher.read_text()
    line = next(n for n, text in enumerate(template.splitlines(), start=1) if '"tools"' in text)
    researcher.write_text(template.replace('"custom:letters"', '"NoSuchSearchTool"'))
    for command in (["validate"], ["run", "--dry-run"], ["run", "--base-url", fake.url]):
        result = cli(*command)
        assert result.code == 2 and f"{researcher}:{line}:" in result.err and "NoSuchSearchTool" in result.err and "Traceback" not in result.err
    researcher.write_text(template.replace('"custom:letters"', '"SerperDevTool"'))  # a crewai-tools class, and no SERPER_API_KEY
    result = cli("run", "--base-url", fake.url)
    assert result.code == 2 and f"{researcher}:{line}:" in result.err and "SERPER_API_KEY" in result.err and "Traceback" not in result.err
    researcher.write_text(template.replace('"custom:letters"', '"custom:nosuch"'))  # CrewAI's own check of its custom tools
    result = cli("validate")
    assert result.code == 2 and "custom tool 'custom:nosuch' not found" in result.err and "Traceback" not in result.err
    assert fake.chat_requests == []
