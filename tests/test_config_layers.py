"""The layered settings files (sandbox, tools, models, memory, missions) share one reader: layers merged key by key,
one typed model checking the result, and each error at the file:line of the value it is about."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamabear.config.models import ModelTable
from mamabear.config.toolset import ToolsConfig
from mamabear.errors import ConfigError
from mamabear.memory.config import MemoryConfig
from mamabear.mission.config import MissionConfig
from mamabear.sandbox.config import SandboxConfig

REPO = Path(__file__).resolve().parent.parent
READERS = {
    "sandbox.yaml": SandboxConfig.load,
    "tools.yaml": ToolsConfig.load,
    "models.yaml": ModelTable.load,
    "memory.yaml": MemoryConfig.load,
    "missions.yaml": MissionConfig.load,
}


def layers(tmp_path: Path, name: str, *bodies: str) -> list[Path]:
    """The packaged layer, then one root per body (a user's, a project's), each with config/NAME holding it."""
    roots = [REPO]
    for i, body in enumerate(bodies):
        root = tmp_path / f"layer{i}"
        (root / "config").mkdir(parents=True)
        (root / "config" / name).write_text(body)
        roots.append(root)
    return roots


def test_a_later_layer_changes_only_the_keys_it_writes(tmp_path):
    roots = layers(
        tmp_path,
        "tools.yaml",
        "limits:\n  output_chars: 500\nmcp_servers:\n  otters:\n    command: otter-server\n    args: [--fast]\n",
        "limits:\n  timeout_s: 5\nmcp_servers:\n  otters:\n    url: http://127.0.0.1:9/mcp\n",
    )
    tools = ToolsConfig.load(roots)
    assert (tools.timeout_s, tools.output_chars) == (5.0, 500)  # one key from each layer
    otters = tools.mcp_servers["otters"]  # a server is replaced whole: the url does not meet the command
    assert (otters.transport, otters.url, otters.command, otters.args) == ("http", "http://127.0.0.1:9/mcp", None, ())
    assert otters.where == f"{roots[2]}/config/tools.yaml:5"  # where its entry starts
    assert tools.reader == "ScrapeWebsiteTool" and tools.search[0].tool == "SerperDevTool"  # the packaged layer's


def test_an_error_names_the_layer_that_wrote_the_value(tmp_path):
    roots = layers(tmp_path, "sandbox.yaml", "limits:\n  timeout_s: 10\n  cpu_s: -3\n", "limits:\n  timeout_s: 20\n")
    with pytest.raises(ConfigError) as bad:
        SandboxConfig.load(roots)
    assert bad.value.message == f"{roots[1]}/config/sandbox.yaml:3: 'limits.cpu_s' must be a whole number of at least 0."


def test_an_empty_section_keeps_what_an_earlier_layer_set(tmp_path):
    roots = layers(tmp_path, "sandbox.yaml", "limits:\n  timeout_s: 7\n", "limits:\n")
    assert SandboxConfig.load(roots).limits.timeout_s == 7.0


@pytest.mark.parametrize(
    ("name", "body", "said"),
    [
        ("memory.yaml", "save_wait_s: '30'\n", "'save_wait_s' must be a number of seconds, zero or more."),
        ("memory.yaml", "across_projects: 1\n", "'across_projects' must be true or false."),
        ("missions.yaml", "stuck:\n  same_failure: 2.5\n", "'stuck.same_failure' must be a whole number of at least 1."),
        ("models.yaml", "tiers:\n  fast: [openai/a, 3]\n", "'tiers.fast' must be a list of model ids."),
        ("models.yaml", "cache:\n  ttl: soon\n", "cache ttl"),
        ("sandbox.yaml", "kinds:\n  lab:\n    host_ports: [80, 70000]\n", "'kinds.lab.host_ports' must be a list of port numbers."),
        ("sandbox.yaml", "policy:\n  deny: ['(']\n", "policy rule '(' is not a valid regular expression"),
        ("tools.yaml", "web:\n  search: [{tool: X}]\n", "'web.search.0.key' is required."),
    ],
)
def test_a_value_of_the_wrong_kind_is_one_sentence_at_its_line(tmp_path, name, body, said):
    roots = layers(tmp_path, name, body)
    with pytest.raises(ConfigError) as bad:
        READERS[name](roots)
    line = body.count("\n")
    assert bad.value.message.startswith(f"{roots[1]}/config/{name}:{line}: ") and said in bad.value.message


@pytest.mark.parametrize("name", sorted(READERS))
def test_an_unknown_key_lists_the_known_ones_at_its_line(tmp_path, name):
    roots = layers(tmp_path, name, "\n\nflavour: mint\n")
    with pytest.raises(ConfigError) as bad:
        READERS[name](roots)
    message = bad.value.message
    assert message.startswith(f"{roots[1]}/config/{name}:3: unknown field 'flavour' in {name}; use one of: ")
    known = message.split("use one of: ")[1].rstrip(".").split(", ")
    assert known == sorted(known) and "origin" not in known and len(known) >= 3


def test_a_mission_s_planner_is_checked_at_the_line_of_the_layer_that_named_it(tmp_path):
    roots = layers(tmp_path, "missions.yaml", "max_steps: 5\nplanner: nobody\n", "judge: research_specialist\n")
    config = MissionConfig.load(roots)
    assert config.max_steps == 5 and config.judge == "research_specialist"
    assert config.check_agents({"research_specialist"}) == [
        f"{roots[1]}/config/missions.yaml:2: planner 'nobody' is not an agent (agents: research_specialist)."
    ]
