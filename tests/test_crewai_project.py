"""A project made by `crewai create crew` (the installed template), run where it lives: its YAML is its crew."""

from __future__ import annotations

from pathlib import Path

import pytest

TEMPLATE = Path(__import__("crewai_cli").__file__).parent / "templates" / "crew"


@pytest.fixture
def template_project(isolated, monkeypatch, tmp_path) -> Path:  # noqa: ANN001
    """What `crewai create crew latest_ai` writes (its prompts for a provider and key aside): src/latest_ai/ from the template."""
    root = tmp_path / "latest_ai"
    package = root / "src" / "latest_ai"
    (package / "config").mkdir(parents=True)
    for name in ("agents.yaml", "tasks.yaml"):
        (package / "config" / name).write_text((TEMPLATE / "config" / name).read_text())
    (package / "crew.py").write_text((TEMPLATE / "crew.py").read_text().replace("{{crew_name}}", "LatestAi"))
    (package / "__init__.py").write_text("")
    monkeypatch.chdir(root)
    return root


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
