"""The packaged catalog, local overrides, and every kind of broken configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamabear.config.catalog import Catalog, packaged_root, search_roots, validate_all
from mamabear.errors import ConfigError, NotFound

SPECIALISTS = {
    "research_specialist": ("pro", 0.3),
    "devops_specialist": ("fast", 0.2),
    "scout_commander": ("pro", 0.5),
    "model_coordinator": ("pro", 0.4),
    "tool_curator": ("fast", 0.6),
    "integration_architect": ("pro", 0.3),
    "live_api_specialist": ("fast", 0.5),
}


def project(tmp_path: Path, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        path = tmp_path / "proj" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return search_roots(tmp_path / "proj")


def test_packaged_catalog_has_the_seven_specialists_with_their_tiers_and_temperatures():
    catalog = Catalog([packaged_root()])
    assert {a.id: (a.tier, a.temperature) for a in catalog.agents.values()} == SPECIALISTS
    for agent in catalog.agents.values():
        assert agent.role and agent.goal and agent.backstory


def test_packaged_crews_are_valid_and_full_team_is_hierarchical_under_scout_commander():
    catalog, errors = validate_all([packaged_root()])
    assert errors == []
    assert {"research", "development", "data_analysis", "full_team"} <= set(catalog.crew_files())
    for name in ("research", "development", "data_analysis"):
        assert catalog.crew(name).process == "sequential"
    full = catalog.crew("full_team")
    assert full.process == "hierarchical" and full.manager == "scout_commander"
    assert set(full.agents) == set(SPECIALISTS)
    for name in catalog.crew_files():
        crew = catalog.crew(name)
        assert crew.inputs and any(i.required for i in crew.inputs)
        assert all(i.required or i.default is not None for i in crew.inputs)


def test_broken_yaml_names_file_and_line(tmp_path):
    roots = project(tmp_path, {"config/agents.yaml": "scout_commander:\n  role: x\n goal: [unclosed\n"})
    with pytest.raises(ConfigError) as err:
        Catalog(roots)
    assert "proj/config/agents.yaml:3" in err.value.message and "broken YAML" in err.value.message


def test_crew_naming_unknown_agent_names_file_and_line(tmp_path):
    roots = project(tmp_path, {"crews/mine.yaml": "description: d\n\nagents: [research_specialist, ghost]\ntasks: [research_topic]\n"})
    catalog = Catalog(roots)
    with pytest.raises(ConfigError) as err:
        catalog.crew("mine")
    assert "crews/mine.yaml:3" in err.value.message and "unknown agent 'ghost'" in err.value.message


def test_crew_naming_unknown_task_names_file_and_line(tmp_path):
    crew = "agents: [research_specialist]\ntasks:\n  - research_topic\n  - task: nope\n    agent: research_specialist\n"
    roots = project(tmp_path, {"crews/mine.yaml": crew})
    with pytest.raises(ConfigError) as err:
        Catalog(roots).crew("mine")
    assert "crews/mine.yaml:4" in err.value.message and "unknown task 'nope'" in err.value.message


def test_task_using_undeclared_input_is_rejected(tmp_path):
    roots = project(
        tmp_path,
        {
            "config/tasks.yaml": "t1:\n  description: about {subject}\n  expected_output: x\n  agent: research_specialist\n",
            "crews/mine.yaml": "agents: [research_specialist]\ntasks: [t1]\ninputs:\n  - name: topic\n",
        },
    )
    with pytest.raises(ConfigError) as err:
        Catalog(roots).crew("mine")
    message = err.value.message  # points at the placeholder's task, says where to declare it and how to pass it
    assert message.startswith(f"{tmp_path / 'proj' / 'config' / 'tasks.yaml'}:2: task 't1' uses {{subject}}"), message  # the description's line
    assert "crews/mine.yaml:3" in message and "-i subject=VALUE" in message


def test_a_task_with_no_agent_shows_the_form_that_gives_it_one(tmp_path):
    roots = project(
        tmp_path,
        {
            "config/tasks.yaml": "t1:\n  description: x\n  expected_output: x\n",
            "crews/mine.yaml": "agents: [research_specialist]\ntasks: [t1]\n",
        },
    )
    with pytest.raises(ConfigError) as err:
        Catalog(roots).crew("mine")
    assert "has no agent" in err.value.message and "`- task: t1` with `agent: AGENT_ID`" in err.value.message


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("tier", "huge", "tier 'huge'"),
        ("temperature", "3", "temperature of agent 'x' must be a number from 0 to 2"),
        ("colour", "red", "unknown field 'colour'"),
    ],
)
def test_bad_agent_fields_are_named(tmp_path, field, value, message):
    roots = project(tmp_path, {"config/agents.yaml": f"x:\n  role: r\n  goal: g\n  backstory: b\n  {field}: {value}\n"})
    with pytest.raises(ConfigError) as err:
        Catalog(roots)
    assert message in err.value.message and "agents.yaml:5" in err.value.message


def test_complexity_must_be_1_to_10(tmp_path):
    roots = project(tmp_path, {"config/tasks.yaml": "t:\n  description: d\n  expected_output: e\n  complexity: 11\n"})
    with pytest.raises(ConfigError, match="tasks.yaml:4: complexity of task 't' must be a whole number from 1 to 10"):
        Catalog(roots).tasks  # noqa: B018


def test_local_config_overrides_packaged_entries_and_adds_new_ones(tmp_path):
    roots = project(
        tmp_path,
        {
            "config/agents.yaml": "devops_specialist:\n  role: Local Ops\n  goal: g\n  backstory: b\n  tier: pro\n"
            "analyst:\n  role: Analyst\n  goal: g\n  backstory: b\n",
            "crews/research.yaml": "description: local research\nagents: [analyst]\ntasks:\n  - task: research_topic\n    agent: analyst\n"
            "inputs: [topic, audience]\n",
        },
    )
    catalog = Catalog(roots)
    assert catalog.agents["devops_specialist"].role == "Local Ops"
    assert catalog.agents["devops_specialist"].tier == "pro"
    assert catalog.agents["research_specialist"].tier == "pro"  # untouched packaged entry
    assert "analyst" in catalog.agents
    crew = catalog.crew("research")
    assert crew.description == "local research" and crew.tasks[0].agent == "analyst"
    assert "full_team" in catalog.crew_files()


def test_unknown_crew_and_agent_are_not_found():
    catalog = Catalog([packaged_root()])
    with pytest.raises(NotFound, match="no crew named 'nope'; known crews: .*research"):
        catalog.crew("nope")
    with pytest.raises(NotFound, match="no agent named 'ghost'"):
        catalog.agent("ghost")


def test_validate_all_collects_one_error_per_broken_crew(tmp_path):
    roots = project(
        tmp_path,
        {
            "crews/a.yaml": "agents: [ghost]\ntasks: [research_topic]\n",
            "crews/b.yaml": "process: parallel\nagents: [research_specialist]\ntasks: [research_topic]\n",
        },
    )
    _, errors = validate_all(roots)
    assert len(errors) == 2
    assert any("a.yaml:1" in e and "ghost" in e for e in errors)
    assert any("b.yaml:1" in e and "process 'parallel'" in e for e in errors)


def test_a_project_s_task_with_a_packaged_id_serves_its_crews_and_leaves_the_packaged_crews_alone(tmp_path, cli, isolated, monkeypatch):
    """A pasted CrewAI template defines research_topic for its own agent: the packaged research crew keeps its own."""
    files = {
        "config/agents.yaml": "researcher:\n  role: '{subject} Senior Data Researcher'\n  goal: Uncover {subject}\n  backstory: b\n",
        "config/tasks.yaml": "research_topic:\n  description: Research {subject}.\n  expected_output: Facts.\n  agent: researcher\n",
        "crews/mine.yaml": "description: mine\nagents: [researcher]\ntasks: [research_topic]\ninputs: [subject]\n",
    }
    roots = project(tmp_path, files)
    catalog, errors = validate_all(roots)
    assert errors == []
    (warning,) = catalog.warnings
    assert warning.startswith(f"{roots[1]}/config/tasks.yaml:2: task 'research_topic' shadows the packaged one")
    packaged = catalog.crew("research")
    assert packaged.tasks[0].agent == "research_specialist"
    assert catalog.scoped(packaged).tasks["research_topic"].description.startswith("Research {topic} for an audience of {audience}.")
    mine = catalog.crew("mine")
    assert mine.tasks[0].agent == "researcher" and catalog.scoped(mine).tasks["research_topic"].description == "Research {subject}."
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(roots[1]))
    checked = cli("validate")
    assert checked.code == 0 and "warning:" in checked.err and "shadows the packaged one" in checked.err
    planned = cli("run", "research", "-i", "topic=otters", "--dry-run", "--model", "openai/gpt-4.1-mini", "--json")
    assert planned.code == 0, planned.err
    assert [t["agent"] for t in planned.json()["tasks"]][0] == "research_specialist"


def test_an_agent_placeholder_the_crew_does_not_declare_is_an_error_with_file_and_line(tmp_path):
    files = {
        "config/agents.yaml": "researcher:\n  role: Researcher\n  goal: g\n  backstory: |\n    You know {field} well.\n",
        "config/tasks.yaml": "dig:\n  description: Dig into {subject}.\n  expected_output: Facts.\n  agent: researcher\n",
        "crews/mine.yaml": "description: mine\nagents: [researcher]\ntasks: [dig]\ninputs: [subject]\n",
    }
    _, errors = validate_all(project(tmp_path, files))
    (error,) = errors
    assert "proj/config/agents.yaml:4: agent 'researcher' uses {field}, which crew 'mine' does not declare" in error
    assert "then run it with -i field=VALUE" in error
