"""The shared memory end to end: real embeddings (all-MiniLM-L6-v2 on the CPU), real Chroma, real crews."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env
from mamabear.store.database import Store

pytestmark = pytest.mark.memory_on

UNRELATED = [
    "quarterly tax filing is due in April",
    "the build server runs Debian 12",
    "paint the garden fence green before winter",
    "our API rate limit is 600 requests a minute",
]
OTTER_FACT = "Otters hold hands while they sleep so they do not drift apart."


def store_for(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def mamabear(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mamabear", *args], capture_output=True, text=True, cwd=REPO, timeout=180, env=subprocess_env(MAMABEAR_HOME=str(home), **env)
    )


def test_recall_by_meaning_with_no_model_configured(cli, isolated):
    for text in [*UNRELATED[:2], "the cat purrs on the sofa", *UNRELATED[2:]]:
        assert cli("memory", "add", text).code == 0
    found = cli("memory", "search", "a feline making sounds", "--json")
    assert found.code == 0 and found.out.startswith("["), found.out[:300]
    results = found.json()
    assert results[0]["content"] == "the cat purrs on the sofa"
    assert results[0]["score"] > max(r["score"] for r in results[1:])
    stats = cli("memory", "stats", "--json").json()
    assert stats["records"] == 5 and stats["scopes"] == {"/user": 5} and stats["embedder"] == "local:all-MiniLM-L6-v2"
    assert stats["location"] == str(isolated / "chroma")


def test_memories_persist_across_processes(cli, isolated):
    added = mamabear(isolated, "memory", "add", "the deploy key lives in the vault", "--scope", "/crew/development", "--json")
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    listed = cli("memory", "list", "--json").json()
    assert [r["id"] for r in listed] == [record["id"]] and listed[0]["scope"] == "/crew/development"
    searched = mamabear(isolated, "memory", "search", "where is the deployment secret kept", "--json")
    assert json.loads(searched.stdout)[0]["id"] == record["id"]


def test_scope_filters_and_reset(cli, isolated):
    cli("memory", "add", "prefers answers in British English")
    cli("memory", "add", "otters are mustelids", "--scope", "/crew/research", "-c", "biology")
    cli("memory", "add", "the CLI is written in Go", "--scope", "/crew/development")
    only = cli("memory", "search", "language", "--scope", "/crew/research", "--json").json()
    assert [r["scope"] for r in only] == ["/crew/research"] and only[0]["categories"] == ["biology"]
    assert {r["scope"] for r in cli("memory", "list", "--scope", "/crew", "--json").json()} == {"/crew/research", "/crew/development"}
    refused = cli("memory", "reset", "--scope", "/crew")
    assert refused.code == 2 and "--yes" in refused.err
    assert cli("memory", "reset", "--scope", "/crew", "--yes", "--json").json() == {"deleted": 2, "scope": "/crew"}
    assert [r["scope"] for r in cli("memory", "list", "--json").json()] == ["/user"]
    bad = cli("memory", "search", "x", "--scope", "crew")
    assert bad.code == 2 and "starting with /" in bad.err


def test_a_crew_saves_what_it_learned_and_the_next_crew_recalls_it(cli, fake, isolated):
    fake.add(task="Research otters", times=1, text=OTTER_FACT)
    first = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert first.code == 0, first.err
    saved = first.json()["memory"]["saved"]
    run_id = first.json()["run_id"]
    learned = [s for s in saved if s["scope"] != f"/run/{run_id}"]
    assert OTTER_FACT in [s["content"] for s in learned] and all(s["scope"].startswith("/crew/research") for s in learned)
    assert len(learned) == 3  # each task's result, as it is (analysis: none), under its crew's scope
    assert len(saved) == 4  # and the run's result under /run/ID
    assert len(store_for(isolated).llm_calls(run_id)) == len(fake.chat_requests) == 3  # the memory made no model call
    listed = cli("memory", "list", "--json").json()
    assert OTTER_FACT in [r["content"] for r in listed] and {r["metadata"]["run_id"] for r in listed} == {run_id}
    result = cli("memory", "list", "--scope", f"/run/{run_id}", "--json").json()
    assert [r["content"] for r in result] == [first.json()["output"]]  # the run's result, under /run/ID

    before = len(fake.chat_requests)
    second = cli("run", "data_analysis", "-i", "question=how do otters sleep", "--base-url", fake.url, "--json", "--quiet")
    assert second.code == 0, second.err
    prompts = [r["text"] for r in fake.chat_requests[before:] if "Current Task" in r["text"]]
    assert any(OTTER_FACT in p for p in prompts)  # recalled into a task prompt of another crew
    recalled = second.json()["memory"]["recalled"]
    otter_id = next(s["id"] for s in learned if s["content"] == OTTER_FACT)
    assert any(otter_id in r["ids"] for r in recalled)
    shown = cli("runs", "show", second.json()["run_id"])
    assert "recalled" in shown.out
    spans = cli("runs", "trace", second.json()["run_id"], "--json").json()
    ids = {s["span_id"]: s for s in spans}
    queries = [s for s in spans if s["name"] == "memory query"]
    assert queries and any(q["attributes"]["mamabear.memory.results"] for q in queries)
    assert all(ids[q["parent_id"]]["name"].startswith(("task ", "invoke_agent ")) for q in queries)  # recall is part of the task's step


def test_no_memory_flag_and_crew_setting_switch_it_off(cli, fake, isolated, tmp_path, monkeypatch):
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet", "--no-memory")
    assert result.code == 0
    assert result.json()["memory"] == {"saved": [], "recalled": []} and len(store_for(isolated).llm_calls(result.json()["run_id"])) == 3
    assert not any("memory statements" in r["text"] for r in fake.chat_requests)
    project = tmp_path / "project"
    (project / "crews").mkdir(parents=True)
    crew = (REPO / "crews" / "research.yaml").read_text() + "memory: false\n"
    (project / "crews" / "research.yaml").write_text(crew)
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    plan = cli("run", "research", "-i", "topic=otters", "--dry-run", "--json").json()
    assert plan["memory"] == "off"


def test_changing_the_embedder_on_a_filled_store_is_refused_with_the_way_out(cli, isolated, tmp_path, monkeypatch):
    assert cli("memory", "add", "something to keep").code == 0
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "memory.yaml").write_text("embedder: {provider: openai, config: {model_name: text-embedding-3-small, api_key: sk-unused}}\n")
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    refused = cli("memory", "search", "anything")
    assert refused.code == 2 and "local:all-MiniLM-L6-v2" in refused.err and "memory reset --yes" in refused.err
    assert "Traceback" not in refused.err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chroma_server_by_url(cli, isolated, tmp_path, monkeypatch):
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        monkeypatch.setenv("MAMABEAR_CHROMA_URL", f"http://127.0.0.1:{port}")
        assert cli("memory", "add", "the cat purrs on the sofa").code == 0
        cli("memory", "add", UNRELATED[0])
        assert cli("memory", "search", "a feline making sounds", "--json").json()[0]["content"] == "the cat purrs on the sofa"
        assert cli("memory", "stats", "--json").json()["location"] == f"http://127.0.0.1:{port}"
        assert not (isolated / "chroma").exists()  # nothing was written locally
    finally:
        server.terminate()
        server.wait(timeout=30)


WRITER = """
import sys
from mamabear.memory.service import MemoryService
from mamabear.engine.services import Services
ws = Services()
service = MemoryService(ws.settings, ws.memory_config)
for i in range(int(sys.argv[2])):
    service.add(f"note {i} from writer {sys.argv[1]}", "/user", ["note"], 0.5)
"""


def test_two_processes_writing_at_once_lose_nothing(cli, isolated):
    env = subprocess_env(MAMABEAR_HOME=str(isolated))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, "25"], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for writer in writers:
        _, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err
    listed = cli("memory", "list", "--limit", "100", "--json").json()
    assert len(listed) == 50
    assert {r["content"] for r in listed} == {f"note {i} from writer {w}" for i in range(25) for w in ("a", "b")}


def test_isolated_and_read_only_crews(cli, isolated):
    from mamabear.engine.services import Services
    from mamabear.memory.shared import make_memory

    cli("memory", "add", "the user likes short answers")
    cli("memory", "add", "the lab uses short pipettes", "--scope", "/crew/lab")
    ws = Services()

    def scopes(mode: str) -> set[str]:
        memory = make_memory(ws.settings, ws.memory_config, crew="lab", mode=mode)
        return {m.record.scope for m in memory.recall("short things", depth="shallow")}

    assert scopes("shared") == {"/user", "/crew/lab"}
    assert scopes("isolated") == {"/crew/lab"}
    read_only = make_memory(ws.settings, ws.memory_config, crew="lab", mode="read_only")
    assert scopes("read_only") == {"/user", "/crew/lab"}
    assert read_only.remember("not kept", scope="/crew/lab", categories=["x"], importance=0.5) is None
    assert cli("memory", "stats", "--json").json()["records"] == 2


def test_secrets_never_reach_the_memory(cli, isolated, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-abcdef123456")
    cli("memory", "add", "the key for the bears API is sk-live-abcdef123456")
    stored = cli("memory", "list", "--json").json()[0]["content"]
    assert "sk-live" not in stored and "[REDACTED]" in stored


def test_a_project_s_crews_recall_only_their_project_s_memories_unless_shared(cli, fake, isolated, tmp_path, monkeypatch):
    from mamabear.engine.services import Services
    from mamabear.memory.shared import make_memory

    cli("memory", "add", "otters hold hands", "--scope", "/crew/research")  # a packaged crew's memory, from earlier runs
    cli("memory", "add", "otters use stones", "--scope", "/project/template/crew/mine")
    cli("memory", "add", "the owl project ships on friday", "--scope", "/project/owls/crew/plan")
    ws = Services()

    def scopes(config, **how) -> set[str]:  # noqa: ANN001
        memory = make_memory(ws.settings, config, crew="mine", **how)
        return {m.record.scope for m in memory.recall("otters and owls", depth="shallow")}

    assert scopes(ws.memory_config, project="template") == {"/project/template/crew/mine"}
    assert scopes(ws.memory_config, project="template", mode="isolated") == {"/project/template/crew/mine"}
    shared = ws.memory_config.model_copy(update={"across_projects": True})
    assert scopes(shared, project="template") == {"/crew/research", "/project/template/crew/mine", "/project/owls/crew/plan"}  # as a packaged crew
    assert "/crew/research" in scopes(ws.memory_config)  # a packaged crew still recalls across crews

    project = tmp_path / "template"  # a pasted template crew, run where it lives: it saves under its project
    (project / "crews").mkdir(parents=True)
    (project / "crews" / "mine.yaml").write_text("description: mine\nagents: [research_specialist]\ntasks: [research_topic]\ninputs: [topic, audience]\n")
    monkeypatch.chdir(project)
    fake.add(contains="You extract discrete, reusable memory statements", times=1, text=json.dumps({"memories": ["otters float on their backs"]}))
    run = cli("run", "mine", "-i", "topic=otters", "-i", "audience=kids", "--base-url", fake.url, "--json", "--quiet")
    assert run.code == 0, run.err
    saved = [s["scope"] for s in run.json()["memory"]["saved"]]
    assert saved and all(scope.startswith("/project/template/") for scope in saved)  # what it learned and its result
    recalled = {i for r in run.json()["memory"]["recalled"] for i in r["ids"]}
    packaged = {r["id"] for r in cli("memory", "list", "--scope", "/crew/research", "--json").json()}
    own = {r["id"] for r in cli("memory", "list", "--scope", "/project/template", "--json").json()}
    assert recalled & own and not recalled & packaged  # its project's memories, nothing from the packaged crew's runs


def test_with_analysis_model_the_model_distils_what_is_kept(cli, fake, isolated):
    """memory.yaml's `analysis: model` is CrewAI's own way: each task's result is distilled by a model call."""
    Path("config").mkdir()
    Path("config/memory.yaml").write_text("analysis: model\n")
    fake.add(contains="You extract discrete, reusable memory statements", times=1, text=json.dumps({"memories": [OTTER_FACT]}))
    first = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert first.code == 0, first.err
    learned = [s["content"] for s in first.json()["memory"]["saved"] if s["scope"] != f"/run/{first.json()['run_id']}"]
    assert OTTER_FACT in learned
    assert len(store_for(isolated).llm_calls(first.json()["run_id"])) > 3  # the memory's own calls, routed and stored


def test_a_long_result_is_kept_in_chunks_cut_at_paragraphs():
    from mamabear.memory.shared import result_chunks

    paragraphs = [f"Paragraph {n}: " + "otters " * 60 for n in range(6)]  # about 430 characters each
    chunks = result_chunks("Task: t\nAgent: a\nExpected result: e\nResult: " + "\n\n".join(paragraphs))
    assert len(chunks) == 3 and all(len(c) <= 1000 for c in chunks) and chunks[0].startswith("Paragraph 0:")
    assert "\n\n".join(chunks) == "\n\n".join(p.strip() for p in paragraphs)  # nothing lost, nothing added
    assert result_chunks("Task: t\nResult: " + "x" * 2500) == ["x" * 1000]  # one word longer than a chunk: its first 1,000
    assert result_chunks("Task: t\nResult: " + "word " * 500) == ["word " * 199 + "word", "word " * 199 + "word", "word " * 99 + "word"]


def test_a_task_is_shown_the_most_relevant_earlier_memories_within_a_budget_and_not_its_own_runs(cli, fake, isolated):
    """The run's own results are its tasks' context already; what is shown of earlier ones is bounded."""
    long_fact = "Otters use stones as tools to crack open shellfish. " * 40  # about 2,000 characters
    assert cli("memory", "add", long_fact.strip()).code == 0
    first = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json", "--quiet")
    assert first.code == 0, first.err
    own = {s["id"] for s in first.json()["memory"]["saved"]}
    recalled = [i for r in first.json()["memory"]["recalled"] for i in r["ids"]]
    assert recalled and not own & set(recalled)  # it never recalled what it had just saved itself
    prompts = [r["text"] for r in fake.chat_requests if "Current Task" in r["text"]]
    shown = [p[p.find("Otters use stones") :] for p in prompts if "Otters use stones" in p]
    assert shown and all(p.count("Otters use stones") <= 20 for p in shown)  # cut to the budget (1,000 characters)
