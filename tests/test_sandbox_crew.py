"""A crew whose scripted model drives the sandbox through tool calls: create, edit and run a file; resume reattaches."""

from __future__ import annotations

from pathlib import Path

from mamabear.engine.services import Services
from mamabear.store.database import Store

QUESTION = ["-i", "question=how many bears"]
FRAME, COLLECT = "Turn the question", "Identify and describe the data"


def store_for(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def script_file_work(fake) -> None:  # noqa: ANN001
    """Task 1 creates count.py, fixes it, then runs it; each tool call is one model reply."""
    fake.add(
        task=FRAME, times=1, tool_calls=[{"name": "file_create", "arguments": {"path": "out/count.py", "file_text": "bears = 3\nprint('bears:', bear)\n"}}]
    )
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "file_str_replace", "arguments": {"path": "out/count.py", "old_str": "bear)", "new_str": "bears * 2)"}}])
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "python3 out/count.py"}}])
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "sudo apt-get install bears"}}])


def test_agents_create_edit_and_run_a_file_through_tool_calls(cli, fake, isolated):
    script_file_work(fake)
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    frame = [r for r in fake.chat_requests if FRAME in r["task"]]
    assert len(frame) == 5  # four tool calls, then the answer
    tools_offered = {t["function"]["name"] for t in frame[0]["body"]["tools"]}
    assert {"bash", "file_view", "file_create", "file_str_replace", "file_insert"} <= tools_offered
    assert not tools_offered & {"browser_navigate", "browser_screenshot"}  # the local sandbox has no browser
    assert "bears: 6" in frame[3]["text"] and "[exit code 0]" in frame[3]["text"]  # the program's output reached the model
    assert "refused by the sandbox policy" in frame[4]["text"]

    session = Services().sessions().get(doc["session_id"])
    assert (Path(session["workdir"]) / "out" / "count.py").read_text() == "bears = 3\nprint('bears:', bears * 2)\n"
    assert (Path(session["workdir"]) / "data").is_dir()  # the data_analysis kind's set-up ran

    shown = cli("runs", "show", doc["run_id"], "--json").json()
    actions = [(a["action"], a["allowed"], a["exit_code"], a["task_position"], a["agent"]) for a in shown["sandbox_actions"]]
    assert actions == [
        ("setup", True, 0, 1, "model_coordinator"),
        ("create", True, 0, 1, "model_coordinator"),
        ("str_replace", True, 0, 1, "model_coordinator"),
        ("bash", True, 0, 1, "model_coordinator"),
        ("bash", False, None, 1, "model_coordinator"),
    ]
    assert shown["totals"]["sandbox_refused"] == 1
    assert [c["tool"] for c in shown["tool_calls"]] == ["file_create", "file_str_replace", "bash", "bash"]
    logs = cli("runs", "logs", doc["run_id"]).out
    assert f"started sandbox session {doc['session_id']} (local, data_analysis)" in logs
    table = cli("runs", "show", doc["run_id"])
    assert f"sandbox session {doc['session_id']}" in table.out and "python3 out/count.py" in table.out


def test_a_crew_that_never_calls_a_tool_starts_no_session(cli, fake, isolated):
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0
    assert result.json()["session_id"] is None
    assert cli("sandbox", "list", "--all", "--json").json() == []


def test_a_resumed_run_works_in_the_same_session(cli, fake, isolated):
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "echo honey > out/note.txt"}}])
    fake.add(task=COLLECT, status=400, times=2)  # task 2 fails (and its one retry): the run fails, resumable
    failed = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert failed.code == 1, failed.err
    first = failed.json()
    assert first["status"] == "failed" and first["session_id"]

    fake.add(task=COLLECT, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "cat out/note.txt"}}])
    resumed = cli("resume", first["run_id"], "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["session_id"] == first["session_id"]
    collect = [r for r in fake.chat_requests if COLLECT in r["task"] and r["status"] == 200]
    assert "honey" in collect[-1]["text"]  # the file task 1 wrote is there for task 2
    assert len(Services().sessions().every()) == 1
    store = store_for(isolated)
    assert [a["attempt"] for a in Services().sessions().ledger.actions(run_id=first["run_id"])] == [1, 1, 2]
    assert store.run(first["run_id"]).session_id == first["session_id"]


def test_session_flag_runs_the_crew_in_an_existing_session(cli, fake, isolated):
    session_id = cli("sandbox", "start", "--kind", "data_analysis").out.strip()
    cli("sandbox", "exec", session_id, "--", "echo prepared > out/ready.txt")
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "file_view", "arguments": {"path": "out/ready.txt"}}])
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--session", session_id, "--json", "--quiet")
    assert result.code == 0, result.err
    assert result.json()["session_id"] == session_id
    frame = [r for r in fake.chat_requests if FRAME in r["task"]]
    assert "1\tprepared" in frame[1]["text"]
    missing = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--session", "sb-nothere", "--quiet")
    assert missing.code == 2 and "no sandbox session 'sb-nothere'" in missing.err


def project_with(tmp_path: Path, monkeypatch, **files: str) -> Path:  # noqa: ANN001
    project = tmp_path / "project"
    for name, text in files.items():
        path = project / name.replace("__", "/").replace("_yaml", ".yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    return project


def test_pooled_sessions_are_reused_by_runs_of_the_same_kind(cli, fake, isolated, tmp_path, monkeypatch):
    project_with(tmp_path, monkeypatch, config__sandbox_yaml="reuse_by_kind: true\n")
    ids = []
    for word in ("first", "second"):
        fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": f"echo {word} >> out/log.txt"}}])
        # --no-cache: the two runs send identical prompts, and the model is scripted to answer them differently
        result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet", "--no-cache")
        assert result.code == 0, result.err
        ids.append(result.json()["session_id"])
    assert ids[0] == ids[1]
    listed = cli("sandbox", "list", "--json").json()
    assert [(s["id"], s["pooled"], s["status"]) for s in listed] == [(ids[0], True, "running")]
    assert cli("sandbox", "exec", ids[0], "--", "cat out/log.txt").out == "first\nsecond\n"


def test_tools_and_sandbox_in_yaml_are_checked_with_file_and_line(cli, isolated, tmp_path, monkeypatch):
    project = project_with(tmp_path, monkeypatch, config__agents_yaml=("devops_specialist:\n  role: r\n  goal: g\n  backstory: b\n  tools: [bash, hammer]\n"))
    result = cli("validate")
    assert result.code == 2 and "agents.yaml:5" in result.err and "unknown tool 'hammer'" in result.err
    (project / "config" / "agents.yaml").unlink()

    project_with(
        tmp_path,
        monkeypatch,
        crews__lab_yaml=(
            "process: sequential\nagents: [model_coordinator]\ntasks: [frame_question]\ninputs: [question, dataset]\n"
            "sandbox: {kind: data_analysis, flavour: x}\n"
        ),
    )
    result = cli("crews", "show", "lab")
    assert result.code == 2 and "lab.yaml:5" in result.err and "unknown field 'flavour'" in result.err

    project_with(
        tmp_path,
        monkeypatch,
        crews__lab_yaml=(
            "process: sequential\nagents: [model_coordinator]\ntasks: [frame_question]\ninputs: [question, dataset]\n"
            "tools: [bash]\nsandbox: {kind: data_analysis, network: false}\n"
        ),
    )
    plan = cli("run", "lab", "-i", "question=q", "-i", "dataset=d", "--dry-run", "--json").json()
    assert plan["sandbox"]["network"] is False  # the crew's setting, over the kind's


def test_dry_run_shows_tools_and_the_backend_each_key_selects(cli, isolated, monkeypatch):
    plan = cli("run", "data_analysis", *QUESTION, "--dry-run", "--json").json()
    assert plan["sandbox"] == {"backend": "local", "kind": "data_analysis", "session": None, "reuse": False, "network": True}
    assert "bash" in plan["agents"][0]["tools"] and "browser_navigate" not in plan["agents"][0]["tools"]
    monkeypatch.setenv("SCRAPYBARA_API_KEY", "sb-anything")
    plan = cli("run", "data_analysis", *QUESTION, "--dry-run", "--json").json()
    assert plan["sandbox"]["backend"] == "scrapybara" and "browser_navigate" in plan["agents"][0]["tools"]
    assert cli("run", "data_analysis", *QUESTION, "--dry-run", "--json", "--sandbox", "local").json()["sandbox"]["backend"] == "local"
    research = cli("run", "research", "-i", "topic=owls", "--dry-run", "--json").json()
    assert research["sandbox"] is None and all(a["tools"] == ["ScrapeWebsiteTool"] for a in research["agents"])  # web: no key, no search
