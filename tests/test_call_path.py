"""Every model call a run makes goes through one guarded, recorded path: whatever the route, whatever made it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import store_for

CREW_CLASS = """

@CrewBase
class LatestAi:
    agents: list
    tasks: list

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"]{researcher})

    @agent
    def reporting_analyst(self) -> Agent:
        return Agent(config=self.agents_config["reporting_analyst"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"]{research_task})

    @task
    def reporting_task(self) -> Task:
        return Task(config=self.tasks_config["reporting_task"]{reporting_task})

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
"""


def crew_py(head: str, researcher: str = "", research_task: str = "", reporting_task: str = "") -> str:
    """A crew.py as the public examples write it: the template's two agents and tasks, each with the options given."""
    imports = "from crewai import Agent, Crew, Process, Task\nfrom crewai.project import CrewBase, agent, crew, task\n"
    return imports + head + CREW_CLASS.format(researcher=researcher, research_task=research_task, reporting_task=reporting_task)


JSON_HEAD = """from crewai.tools import tool
from pydantic import BaseModel


@tool("count_letters")
def count_letters(word: str) -> str:
    '''Count the letters of a word.'''
    return str(len(word))


class Brief(BaseModel):
    title: str
    points: list[str]


def short_enough(output):
    return (True, output.raw) if len(output.raw) < 4000 else (False, "too long")
"""


def _write_crew(project: Path, guardrail: str) -> None:
    written = crew_py(JSON_HEAD, ", tools=[count_letters]", f", output_json=Brief, guardrail={guardrail}", ", output_pydantic=Brief")
    (project / "src" / "latest_ai" / "crew.py").write_text(written)


def _answered(fake) -> int:  # noqa: ANN001
    return len([r for r in fake.chat_requests if r["status"] == 200])


@pytest.mark.parametrize("guardrail", ["short_enough", '"The answer names at least one fact about otters."'])
def test_conversion_and_guardrail_calls_are_in_the_store_with_their_task_and_agent(cli, fake, template_project, isolated, guardrail):
    _write_crew(template_project, guardrail)
    fake.add(contains="complies with the given guardrail", text='{"valid": true, "feedback": null}')  # a guardrail's judge
    fake.add(task="Conduct a thorough research", tool_calls=[{"name": "count_letters", "arguments": {"word": "otter"}}], times=1)
    fake.add(task="Conduct a thorough research", text="Otters hold hands while they sleep.", times=1)  # after a tool: converted
    fake.add(text='{"title": "Otters", "points": ["hold hands"]}')
    result = cli("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    calls = store_for(isolated).llm_calls(result.json()["run_id"])
    conversions = [r for r in fake.chat_requests if r["task"].startswith("Otters hold hands")]
    assert conversions and len(calls) == _answered(fake)  # CrewAI converted the answer, and every call made is recorded
    assert all(c["agent"] in ("researcher", "reporting_analyst") and c["task_position"] in (1, 2) for c in calls), calls


XAI = """
providers:
  xai: {env: [XAI_API_KEY]}
prices:
  xai/grok-3: {input: 3.0, output: 15.0}
"""


@pytest.fixture
def xai(fake, monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    """A LiteLLM-only provider (CrewAI has no native class for xai/), as a project adds one: its key, its price, its server."""
    (tmp_path / "work" / "config").mkdir(exist_ok=True)
    (tmp_path / "work" / "config" / "models.yaml").write_text(XAI)
    monkeypatch.setenv("XAI_API_KEY", "xai-test-key")
    monkeypatch.setenv("XAI_API_BASE", fake.url)
    return fake


def test_a_litellm_only_route_is_guarded_counted_and_stopped_by_its_budget(cli, xai, isolated):
    from mamabear.compat.crewai import resolve_route

    assert resolve_route("xai/grok-3", {}).native_class is None  # the route this test is about
    result = cli("run", "research", "-i", "topic=bees", "--model", "xai/grok-3", "--no-cache", "--budget-tokens", "50", "--json", "--quiet")
    assert result.code == 3, result.err
    assert len(xai.chat_requests) == 1  # the first call spent the budget; no second call was made
    doc = result.json()
    calls = store_for(isolated).llm_calls(doc["run_id"])
    assert [(c["agent"], c["model"], c["outcome"]) for c in calls] == [("research_specialist", "xai/grok-3", "ok")]
    assert calls[0]["tokens_in"] == xai.chat_requests[0]["usage"]["prompt_tokens"] and calls[0]["cost_usd"] > 0


def test_a_litellm_only_route_is_retried_and_answered_from_the_cache(cli, xai, isolated):
    xai.add(status=503, times=1)  # one transient fault: retried by mamabear, visibly
    first = cli("run", "research", "-i", "topic=bees", "--model", "xai/grok-3", "--json", "--quiet")
    assert first.code == 0, first.err
    outcomes = [c["outcome"] for c in store_for(isolated).llm_calls(first.json()["run_id"])]
    assert len(xai.chat_requests) == 4 and sorted(outcomes) == ["error", "ok", "ok", "ok"]  # litellm made no retry of its own
    again = cli("run", "research", "-i", "topic=bees", "--model", "xai/grok-3", "--json", "--quiet")
    assert again.code == 0 and len(xai.chat_requests) == 4  # every call answered from the response cache


def test_a_budget_stops_a_conversion_call_as_it_stops_an_agent_s_turn(cli, fake, template_project, isolated):
    _write_crew(template_project, "short_enough")
    fake.add(task="Conduct a thorough research", tool_calls=[{"name": "count_letters", "arguments": {"word": "otter"}}], times=1)
    fake.add(task="Conduct a thorough research", text="Otters hold hands while they sleep.", times=1)
    fake.add(text='{"title": "Otters", "points": ["hold hands"]}')
    args = ("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--no-cache", "--json", "--quiet")
    first = cli(*args)
    assert first.code == 0, first.err
    calls = sorted(store_for(isolated).llm_calls(first.json()["run_id"]), key=lambda c: c["started_at"])
    turns = 2  # the tool call and the answer; the conversion comes next
    spent = sum(c["tokens_in"] + c["tokens_out"] for c in calls[:turns])
    fake.reset()
    fake.add(task="Conduct a thorough research", tool_calls=[{"name": "count_letters", "arguments": {"word": "otter"}}], times=1)
    fake.add(task="Conduct a thorough research", text="Otters hold hands while they sleep.", times=1)
    stopped = cli(*args, "--budget-tokens", str(spent))
    assert stopped.code == 3, stopped.err
    assert len(fake.chat_requests) == turns  # the conversion was refused before it left: the budget counted both turns


def test_a_tool_using_crew_runs_against_a_server_that_validates_requests_as_llama_cpp_does(cli, fake):
    from test_sandbox_crew import FRAME, QUESTION, script_file_work

    fake.strict = True
    script_file_work(fake)
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    assert [r["status"] for r in fake.chat_requests] == [200] * len(fake.chat_requests)  # not one request was refused
    answered = [r for r in fake.chat_requests if FRAME in r["task"]][-1]
    sent_back = [m for m in answered["body"]["messages"] if m["role"] == "assistant"]
    assert len(sent_back) == 4 and all(m["content"] == "" and m["tool_calls"] for m in sent_back)


@pytest.mark.memory_on
def test_memory_runs_against_a_server_without_json_schema_by_asking_in_words_once_learnt(cli, fake, isolated):
    Path("config").mkdir()
    Path("config/memory.yaml").write_text("analysis: model\n")  # the memory's own model calls (CrewAI's way)
    fake.strict, fake.json_schema = True, False  # llama-cpp-python: text and json_object only
    fake.add(contains="It must match this JSON schema", text='Here it is:\n```json\n{"keep": true, "memories": [],}\n```')
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    refused = [r for r in fake.chat_requests if r["status"] == 500]
    asked_in_words = [r for r in fake.chat_requests if "It must match this JSON schema" in r["text"]]
    assert len(refused) == 1 and refused[0]["body"]["response_format"]["type"] == "json_schema"  # learnt once, not per call
    assert asked_in_words and all(r["body"]["response_format"]["type"] == "json_object" for r in asked_in_words)
    calls = store_for(isolated).llm_calls(result.json()["run_id"])
    assert len(calls) == len(fake.chat_requests)  # the refused request is in the store too
    assert "does not take a json_schema response format" in cli("runs", "logs", result.json()["run_id"]).out


def test_a_request_the_server_refuses_as_invalid_is_not_retried_and_is_said_in_one_sentence(cli, fake):
    report = "[{'type': 'missing', 'loc': ('body', 'messages', 0, 'typed-dict', 'name'), 'msg': 'Field required', 'input': {}}]"
    fake.add(status=500, text=report)
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--no-cache")
    assert result.code == 1
    tries = 2  # the task and its one retry (task_retries: 1); no transient retries within either
    assert len(fake.chat_requests) == tries
    error = next(line for line in result.err.splitlines() if line.startswith("error:"))
    assert "the model server refused the request as invalid (HTTP 500: messages.0.name: Field required)" in error and len(error) < 300


def test_every_request_carries_its_tier_s_output_cap_which_a_project_can_change(cli, fake, tmp_path):
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--no-cache")
    assert result.code == 0, result.err
    assert {r["body"].get("max_tokens") for r in fake.chat_requests} == {8192}  # the research crew's agents are on the pro tier
    fake.reset()
    (tmp_path / "work" / "config").mkdir()
    (tmp_path / "work" / "config" / "models.yaml").write_text("max_tokens:\n  pro: 512\n")
    assert cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--no-cache").code == 0
    assert {r["body"].get("max_tokens") for r in fake.chat_requests} == {512}
    (tmp_path / "work" / "config" / "models.yaml").write_text("max_tokens:\n  pro: lots\n")
    bad = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url)
    assert bad.code == 2 and "models.yaml:2: 'max_tokens.pro' must be a whole number above zero." in bad.err


def test_a_base_url_model_is_priced_only_by_prices_and_an_unpriced_one_is_never_shown_as_zero(cli, fake, tmp_path, monkeypatch):
    monkeypatch.delenv("MAMABEAR_BASE_URL_PRICES")
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--no-cache", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["totals"]["cost_usd"] is None and doc["totals"]["unpriced_calls"] == 3  # a local model named gpt-4.1 is not GPT-4.1
    assert all(t["cost_usd"] is None for t in doc["tasks"]) and doc["cost_by"]["agent"][0]["cost_usd"] is None
    assert "unpriced" in result.err.splitlines()[-1] and "$0.0000" not in result.err
    listed = cli("runs", "list", "--json").json()[0]
    assert listed["unpriced_calls"] == 3 and "unpriced" in cli("runs", "list").out and "unpriced" in cli("runs", "show", doc["run_id"]).out
    (tmp_path / "work" / "config").mkdir()
    (tmp_path / "work" / "config" / "models.yaml").write_text("prices:\n  openai/gpt-4.1: {input: 0, output: 0}\n")  # a local model is free
    free = cli("run", "research", "-i", "topic=owls", "--base-url", fake.url, "--no-cache", "--json", "--quiet").json()
    assert free["totals"]["cost_usd"] == 0.0 and free["totals"]["unpriced_calls"] == 0


def test_a_run_says_at_its_start_when_the_server_does_not_list_its_model(cli, fake):
    fake.served = ["smollm2"]
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url)
    assert result.code == 0, result.err  # it answers any name, as llama.cpp does
    assert "warning: " in result.err and "lists smollm2, not openai/gpt-4.1" in result.err and "Pass --model smollm2" in result.err


# What llama-cpp-python 0.3.36's server answered (HTTP 500) to CrewAI's assistant message with null content beside
# its tool_calls: one problem, reported against each model of the message union.
LLAMA_CPP_REPORT = (Path(__file__).parent / "data" / "llama_cpp_report.txt").read_text()


def test_a_real_server_s_validation_report_is_read_for_its_one_problem_and_is_not_transient():
    from mamabear.llm.resilience import is_transient
    from mamabear.llm.wire import refusal

    class ServerError(Exception):
        status_code = 500

    refused = ServerError(f"Error code: 500 - {{'error': {{'message': {LLAMA_CPP_REPORT!r}}}}}")
    assert refusal(refused) == "the model server refused the request as invalid (HTTP 500: messages.1.content: Input should be a valid string)"
    assert not is_transient(refused)
    assert is_transient(ServerError("Error code: 500 - {'error': {'message': 'CUDA out of memory'}}"))  # a server's own fault is retried


def test_a_context_overflow_is_not_retried_but_a_rate_limit_that_mentions_tokens_is():
    from mamabear.llm.resilience import is_transient

    class Refused(Exception):
        def __init__(self, status: int, text: str) -> None:
            super().__init__(text)
            self.status_code = status

    assert not is_transient(Refused(400, "Requested tokens (9001) exceed context window of 8192"))
    assert not is_transient(Refused(500, "the request exceeds the available context size, try increasing it"))  # llama.cpp's server
    assert is_transient(Refused(429, "Rate limit reached: the maximum context of your tier, 30000 tokens per min"))


def test_null_content_is_sent_as_empty_text_and_nothing_else_changes():
    from mamabear.llm.wire import normalised

    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]
    assert normalised(messages) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}]
    untouched = [{"role": "user", "content": "hi"}]
    assert normalised(untouched) is untouched


KNOWLEDGE_HEAD = """from crewai.knowledge.source.string_knowledge_source import StringKnowledgeSource

FACTS = StringKnowledgeSource(content="Otters hold hands while they sleep. Sea otters use stones as tools.")
EMBEDDER = {"provider": "openai", "config": {"api_key": "not-needed", "api_base": "URL", "model_name": "text-embedding-3-small"}}
"""


def test_a_knowledge_query_s_rewrite_is_recorded_under_its_task_and_agent(cli, fake, template_project, isolated):
    written = crew_py(KNOWLEDGE_HEAD.replace("URL", fake.url), ", knowledge_sources=[FACTS], embedder=EMBEDDER")
    (template_project / "src" / "latest_ai" / "crew.py").write_text(written)
    result = cli("run", "-i", "topic=otters", "-i", "current_year=2026", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    rewrites = [r for r in fake.chat_requests if r["body"]["messages"][0]["content"].startswith("Your goal is to rewrite the user query")]
    assert rewrites, [r["body"]["messages"][0]["content"][:80] for r in fake.chat_requests]
    calls = store_for(isolated).llm_calls(result.json()["run_id"])
    assert len(calls) == _answered(fake)  # the rewrite is in the store, as every call made
    assert sum(1 for c in calls if (c["agent"], c["task_position"]) == ("researcher", 1)) == 2  # its rewrite, then its turn
