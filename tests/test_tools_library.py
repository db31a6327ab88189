"""Tools from outside the sandbox, named in YAML: real crewai-tools classes against scripted APIs on 127.0.0.1, the web
group chosen by which key is set, a project's own tool by import path, the limits, and each mistake an exit 2 at file:line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from searchapis import SearchAPIs

AGENTS = """\
finder:
  role: Otter finder
  goal: Find out about {topic}
  backstory: You search and read.
  tier: fast
  tools: {tools}
"""
TASKS = "find:\n  description: Find out about {topic} on the web.\n  expected_output: Two facts with their sources.\n  agent: finder\n"
CREW = "description: find\nagents: [finder]\ntasks: [find]\ninputs: [topic]\n"
TOOLS_MODULE = """\
import time


def count_letters(word: str) -> str:
    \"\"\"Count the letters of a word.\"\"\"
    return f"{word} has {len(word)} letters"


def slow_lookup(word: str) -> str:
    \"\"\"Look a word up, slowly.\"\"\"
    time.sleep(30)
    return "never"


def undocumented(word: str) -> str:
    return word


def long_page(word: str) -> str:
    \"\"\"Read a very long page about a word.\"\"\"
    return word * 10000
"""


@pytest.fixture
def apis():
    with SearchAPIs() as server:
        yield server


def write_project(tools: str, tools_yaml: str = "", package: str = "findproj") -> None:
    files = {
        "config/agents.yaml": AGENTS.replace("{tools}", tools),
        "config/tasks.yaml": TASKS,
        "crews/find.yaml": CREW,
        "config/tools.yaml": tools_yaml,
        f"src/{package}/__init__.py": "",
        f"src/{package}/tools.py": TOOLS_MODULE,
    }
    for name, text in files.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)


def test_the_web_group_searches_with_serper_and_reads_the_page_it_found(cli, fake, apis, isolated, monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "serper-test-key")
    monkeypatch.setenv("CREWAI_TOOLS_ALLOW_UNSAFE_PATHS", "true")  # crewai-tools' own switch: its reader refuses 127.0.0.1 otherwise
    write_project("[web]", f"defaults:\n  SerperDevTool: {{base_url: '{apis.origin}', n_results: 3}}\n")
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "search_the_internet_with_serper", "arguments": {"search_query": "sea otters"}}])
    page = f"{apis.origin}/otters.html"
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "read_website_content", "arguments": {"website_url": page}}])
    fake.add(task="Find out about", times=1, text="Sea otters hold hands while they sleep (source: otters.html).")
    planned = cli("run", "find", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert planned.json()["agents"][0]["tools"] == ["SerperDevTool", "ScrapeWebsiteTool"]
    result = cli("run", "find", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    (search,) = [r for r in apis.requests if r["api"] == "serper"]
    assert search["path"] == "/search" and search["key"] == "serper-test-key" and search["body"]["q"] == "sea otters" and search["body"]["num"] == 3
    assert [r["path"] for r in apis.requests if r["api"] == "page"] == ["/otters.html"]
    asks = [r for r in fake.chat_requests if "Find out about" in r["task"]]
    assert f"{apis.origin}/otters.html" in asks[1]["text"]  # the search result reached the model
    assert "hold hands while they sleep so that they do not drift apart" in asks[2]["text"]  # and so did the page
    shown = cli("runs", "show", result.json()["run_id"], "--json").json()
    assert [(c["tool"], c["ok"]) for c in shown["tool_calls"]] == [("search_the_internet_with_serper", True), ("read_website_content", True)]
    assert "serper-test-key" not in json.dumps(shown) + json.dumps(cli("runs", "logs", result.json()["run_id"], "--json").json())


def test_brave_is_chosen_when_only_its_key_is_set_and_with_no_key_the_agent_still_reads_pages(cli, fake, apis, isolated, monkeypatch):
    write_project("[web]", f"defaults:\n  BraveSearchTool: {{search_url: '{apis.origin}/res/v1/web/search'}}\n")
    monkeypatch.setenv("TAVILY_API_KEY", "tavily-test-key")  # its module (tavily-python) is not installed here: passed over
    alone = cli("run", "find", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert alone.code == 0 and alone.json()["agents"][0]["tools"] == ["ScrapeWebsiteTool"]
    assert alone.json()["notes"][0].startswith("the web group has no search tool: set one of SERPER_API_KEY")
    monkeypatch.setenv("BRAVE_API_KEY", "brave-test-key")
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "brave_search", "arguments": {"q": "sea otters"}}])
    fake.add(task="Find out about", times=1, text="Otters hold hands.")
    planned = cli("run", "find", "-i", "topic=otters", "--dry-run", "--json", "--base-url", fake.url)
    assert planned.json()["agents"][0]["tools"] == ["BraveSearchTool", "ScrapeWebsiteTool"]
    result = cli("run", "find", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    assert result.code == 0, result.err
    (search,) = [r for r in apis.requests if r["api"] == "brave"]
    assert search["key"] == "brave-test-key" and search["query"] == "sea otters"
    assert "What is known about sea otters" in [r for r in fake.chat_requests if "Find out about" in r["task"]][1]["text"]


def test_a_project_tool_by_import_path_is_called_and_the_limits_cut_and_abandon(cli, fake, isolated):
    tools = "[findproj.tools:count_letters, findproj.tools:slow_lookup, findproj.tools:long_page]"
    write_project(tools, "limits: {timeout_s: 1, output_chars: 500}\n")
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "count_letters", "arguments": {"word": "otter"}}])
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "slow_lookup", "arguments": {"word": "otter"}}])
    fake.add(task="Find out about", times=1, tool_calls=[{"name": "long_page", "arguments": {"word": "otter"}}])
    fake.add(task="Find out about", times=1, text="Otter has 5 letters.")
    started = time.monotonic()
    result = cli("run", "find", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    assert result.code == 0, result.err
    assert time.monotonic() - started < 25  # the slow tool was not waited for
    asks = [r["text"] for r in fake.chat_requests if "Find out about" in r["task"]]
    assert "otter has 5 letters" in asks[1]
    assert "the tool slow_lookup did not finish within 1s and was abandoned" in asks[2]
    calls = cli("runs", "show", cli("runs", "list", "--json").json()[0]["id"], "--json").json()["tool_calls"]
    assert [(c["tool"], c["ok"]) for c in calls] == [("count_letters", True), ("slow_lookup", False), ("long_page", True)]  # the abandoned call failed
    assert "[cut: 49,500 more characters; ask for less, or for a part]" in asks[3] and "otter" * 100 in asks[3]


@pytest.mark.parametrize(
    ("tools", "env", "message"),
    [
        (
            "[SerperDevTol]",
            {},
            "config/agents.yaml:6: agent 'finder' names tool 'SerperDevTol', which crewai-tools does not have (did you mean SerperDevTool?)",
        ),
        ("[SerperDevTool]", {}, "config/agents.yaml:6: tool SerperDevTool of agent 'finder' needs SERPER_API_KEY (API key for Serper); set it"),
        (
            "[{tool: SerperDevTool, args: {n_results: lots}}]",
            {"SERPER_API_KEY": "k"},
            "config/agents.yaml:6: tool SerperDevTool of agent 'finder' does not take these args (n_results:",
        ),
        (
            "[TavilySearchTool]",
            {"TAVILY_API_KEY": "k"},
            "tool TavilySearchTool of agent 'finder' needs tavily-python, which is not installed; pip install tavily-python",
        ),
        ("[findproj.tools:nothing_here]", {}, "config/agents.yaml:6: tool 'findproj.tools:nothing_here' of agent 'finder': module 'findproj.tools' has no"),
        ("[scissors]", {}, "config/agents.yaml:6: agent 'finder' names unknown tool 'scissors'"),
        ("[findproj.tools:undocumented]", {}, "tool 'findproj.tools:undocumented' of agent 'finder' cannot be a tool: Function must have a docstring"),
    ],
    ids=["unknown-class", "missing-key", "bad-arg", "missing-package", "bad-import-path", "not-a-tool-name", "no-docstring"],
)
def test_a_tool_that_cannot_be_used_is_exit_2_at_its_file_and_line_before_any_model_call(cli, fake, isolated, monkeypatch, tools, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    write_project(tools, package="findproj")
    for args in (["validate"], ["run", "find", "-i", "topic=otters", "--dry-run"], ["run", "find", "-i", "topic=otters", "--base-url", fake.url]):
        result = cli(*args)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, (args, result.err)
    assert fake.chat_requests == []


def test_tools_list_and_show_say_what_each_tool_needs_and_who_has_it(cli, isolated, monkeypatch):
    monkeypatch.setenv("BRAVE_API_KEY", "brave-test-key")
    write_project(
        "[web, findproj.tools:count_letters, FileReadTool]", "mcp_servers:\n  otters: {command: otters-mcp, tools: [otter_fact]}\n", package="findproj"
    )
    rows = {r["name"]: r for r in cli("tools", "list", "--json").json()}
    assert rows["web"]["detail"] == "search with BraveSearchTool; pages with ScrapeWebsiteTool" and rows["web"]["used_by"] == ["agent finder", "crew research"]
    assert rows["SerperDevTool"]["usable"] == "needs SERPER_API_KEY" and rows["BraveSearchTool"]["usable"] == "yes"
    assert rows["findproj.tools:count_letters"] == {
        "name": "findproj.tools:count_letters",
        "kind": "project",
        "usable": "yes",
        "detail": "",
        "used_by": ["agent finder"],
    }
    assert rows["FileReadTool"]["kind"] == "crewai-tools" and rows["FileReadTool"]["usable"] == "yes"
    assert rows["mcp:otters"]["detail"] == "stdio: otters-mcp; only otter_fact" and rows["browser"]["usable"] == "each backend's own browser"
    shown = cli("tools", "show", "findproj.tools:count_letters", "--json").json()
    assert shown["arguments"] == ["word"] and shown["description"].endswith("Count the letters of a word.")
    serper = cli("tools", "show", "SerperDevTool", "--json").json()
    assert serper["keys"] == [{"name": "SERPER_API_KEY", "required": True, "set": False}] and serper["arguments"] == ["search_query"]
    text = cli("tools", "show", "SerperDevTool").out
    assert "SERPER_API_KEY (required, not set)" in text
    unknown = cli("tools", "show", "SerperDevTol")
    assert unknown.code == 2 and "did you mean SerperDevTool?" in unknown.err
