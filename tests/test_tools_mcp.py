"""MCP servers declared once in config/tools.yaml and given to agents by name, through CrewAI's own MCP support:
a real stdio server written with the mcp SDK, called by an agent in a run; and the ways a declaration goes wrong."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conftest import REPO

SERVER = REPO / "tests" / "data" / "mcp_otters.py"
TOOL = "otters_mcp_quiet_otter_fact"  # CrewAI names an MCP tool by its server's command line, then the tool's name
AGENTS = """\
keeper:
  role: Otter keeper
  goal: Know {topic}
  backstory: You ask the otter server.
  tier: fast
  tools: [mcp:otters]
"""
TASKS = "ask:\n  description: Ask the otter server about {topic}.\n  expected_output: One fact.\n  agent: keeper\n"
CREW = "description: ask\nagents: [keeper]\ntasks: [ask]\ninputs: [topic]\n"


def write_project(tools_yaml: str, agents: str = AGENTS) -> None:
    for name, text in {"config/agents.yaml": agents, "config/tasks.yaml": TASKS, "crews/ask.yaml": CREW, "config/tools.yaml": tools_yaml}.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)


def declared(log: Path, command: str = "otters-mcp") -> str:
    return (
        f"mcp_servers:\n  otters:\n    command: {command}\n    args: [--quiet]\n"
        f"    env: {{OTTER_LOG: '{log}', OTTER_SECRET: '${{OTTER_SECRET}}'}}\n    tools: [otter_fact]\n"
    )


def on_path(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The server as an installed command (as `npx ...` or `uvx ...` would be): `otters-mcp` on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "otters-mcp").write_text(f'#!/bin/sh\nexec {sys.executable} {SERVER} "$@"\n')
    (bin_dir / "otters-mcp").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_an_agent_calls_a_real_stdio_mcp_server_and_its_answer_reaches_the_model(cli, fake, isolated, monkeypatch, tmp_path):
    on_path(tmp_path, monkeypatch)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("OTTER_SECRET", "given-on-purpose")
    monkeypatch.setenv("UNRELATED_TOKEN", "never-for-the-server")
    write_project(declared(log))
    fake.add(task="Ask the otter server", times=1, tool_calls=[{"name": TOOL, "arguments": {"topic": "tools"}}])
    fake.add(task="Ask the otter server", times=1, text="Sea otters keep a favourite stone.")
    assert cli("validate").code == 0
    result = cli("run", "ask", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    assert log.read_text() == "otter_fact tools\n"  # the call reached the server
    asks = [r for r in fake.chat_requests if "Ask the otter server" in r["task"]]
    offered = [t["function"]["name"] for t in asks[0]["body"]["tools"]]
    assert offered == [TOOL]  # the server's other tool is filtered out by the config
    assert "sea otters keep a favourite stone in a pouch" in asks[1]["text"] and "secret seen: given-on-purpose; unrelated seen: none" in asks[1]["text"]
    calls = cli("runs", "show", result.json()["run_id"], "--json").json()["tool_calls"]
    assert [(c["tool"], c["ok"]) for c in calls] == [(TOOL, True)]


def test_an_undeclared_server_and_a_server_that_cannot_start_are_one_sentence_each(cli, fake, isolated, tmp_path, monkeypatch):
    write_project("mcp_servers: {}\n")
    undeclared = cli("run", "ask", "-i", "topic=otters", "--base-url", fake.url)
    assert undeclared.code == 2 and "config/agents.yaml:6: agent 'keeper' names MCP server 'otters', which config/tools.yaml does not declare" in undeclared.err
    write_project("mcp_servers:\n  otters: {command: x, url: 'http://127.0.0.1:9/mcp'}\n")
    both = cli("validate")
    assert both.code == 2 and "MCP server 'otters' needs either a 'command' (a local server) or a 'url'" in both.err
    write_project(declared(tmp_path / "log", command="/nonexistent/otter-server"))
    for args in (["validate"], ["run", "ask", "-i", "topic=otters", "--dry-run"]):
        missing = cli(*args)
        assert missing.code == 2 and "config/tools.yaml:3: MCP server 'otters': its command '/nonexistent/otter-server' is not found" in missing.err
    unset = declared(tmp_path / "log").replace("${OTTER_SECRET}", "${OTTER_UNSET}")
    write_project(unset)
    on_path(tmp_path, monkeypatch)
    missing_var = cli("run", "ask", "-i", "topic=otters", "--dry-run")
    assert missing_var.code == 2 and "config/tools.yaml:3: MCP server 'otters': it takes ${OTTER_UNSET}, which is not set" in missing_var.err
    monkeypatch.setenv("OTTER_SECRET", "given")
    write_project(declared(tmp_path / "log", command="'false'"))  # starts, and exits at once
    broken = cli("run", "ask", "-i", "topic=otters", "--base-url", fake.url)
    assert broken.code == 2 and "an MCP server could not be started or reached" in broken.err and "Traceback" not in broken.err
    # No model was asked for this crew. (A memory save left running by an earlier test of this worker, with its own
    # server, can land here once in a while; it is not this run's.)
    assert [r for r in fake.chat_requests if "memory" not in r["text"][:200]] == []


def test_a_plain_connection_error_from_crewai_s_mcp_client_is_still_the_mcp_sentence():
    """Seen under load: CrewAI's MCP client gave up with a ConnectionError, not its MCPConnectionError, and the run said
    the model provider could not be reached. Where it was raised decides, not only its class."""
    from crewai.mcp.exceptions import raise_connection_failure

    from mamabear.engine.attempt import describe_failure

    try:
        raise_connection_failure("Failed to connect to MCP server")
    except ConnectionError as exc:
        assert type(exc) is ConnectionError
        message, code = describe_failure(exc)
    assert code == 2 and message.startswith("an MCP server could not be started or reached (Failed to connect to MCP server)")
    message, code = describe_failure(ConnectionError("Connection refused"))
    assert code == 2 and message.startswith("cannot reach the model provider")
