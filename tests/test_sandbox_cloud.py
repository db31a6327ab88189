"""The scrapybara backend: the real SDK against a scripted Scrapybara server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from fakescrapybara import FakeScrapybara
from mamabear.engine.services import Services
from mamabear.sandbox.backend import CommandResult

KEY = "sb-test-key"
QUESTION = ["-i", "question=how many bears"]
FRAME = "Turn the question"


@pytest.fixture(scope="module")
def server():  # noqa: ANN201
    with FakeScrapybara(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def cloud(server, isolated, monkeypatch):  # noqa: ANN001, ANN201
    server.reset()
    monkeypatch.setenv("SCRAPYBARA_API_KEY", KEY)
    monkeypatch.setenv("SCRAPYBARA_BASE_URL", server.url)
    return server


def paths(server) -> list[str]:  # noqa: ANN001
    return [f"{r['method']} {r['path'].split('/instance/')[-1].split('/', 1)[-1] if '/instance/' in r['path'] else r['path']}" for r in server.requests]


def test_start_exec_and_the_requests_the_api_received(cli, cloud):
    started = cli("sandbox", "start", "--kind", "research", "--json")  # the key alone selects scrapybara
    assert started.code == 0, started.err
    session = started.json()
    assert session["backend"] == "scrapybara" and session["remote_id"] in cloud.instances
    start = cloud.requests[0]
    assert start["method"] == "POST" and start["path"].rstrip("/").endswith("/v1/start")
    assert start["json"]["instance_type"] == "ubuntu" and start["json"]["timeout_hours"] == 2
    assert start["headers"].get("x-api-key") == KEY
    setup = [r["json"]["command"] for r in cloud.requests if r["path"].endswith("/bash")]
    assert setup[0].startswith("mkdir -p /home/scrapybara/work") and "mkdir -p notes sources" in setup[1]

    ran = cli("sandbox", "exec", session["id"], "--", "echo hello > notes/a.txt; cat notes/a.txt; (exit 3)")
    assert ran.code == 3 and ran.out == "hello\n"
    assert (cloud.home(session["remote_id"]) / "work" / "notes" / "a.txt").read_text() == "hello\n"
    audit = Services().sessions().ledger.actions(session_id=session["id"])
    assert [(a["action"], a["exit_code"]) for a in audit] == [("setup", 0), ("bash", 3)]
    ended = cli("sandbox", "exec", session["id"], "--", "exit 0")  # the instance's shell ends: no exit code to report
    assert ended.code == 1 and "exit code is unknown" in ended.err


def test_file_tools_and_browser_go_through_the_sdk(cloud):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    assert "wrote" in sessions.edit(session, "create", "src/app.py", file_text="print('hi')\n")
    assert "app.py" in sessions.edit(session, "str_replace", "src/app.py", old_str="hi", new_str="bears")
    assert "print('bears')" in sessions.edit(session, "view", "src/app.py")
    assert sessions.edit(session, "str_replace", "src/app.py", old_str="nowhere", new_str="x").startswith("refused:")
    result = sessions.exec(session, "python3 src/app.py")
    assert isinstance(result, CommandResult) and result.output == "bears" and result.exit_code == 0

    assert sessions.act(session, "navigate", "https://example.org", url="https://example.org") == "the browser is at https://example.org"
    actions = cloud.instances[session["remote_id"]].actions
    assert [a.get("action") for a in actions][-3:] == ["press_key", "type_text", "press_key"]
    said, shot = sessions.screen(session, "take_screenshot", "screenshot")
    assert shot is not None and shot.path.read_bytes().startswith(b"\x89PNG") and "cursor at" in said


def test_pause_saves_the_workspace_and_a_command_resumes_the_instance(cloud):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    sessions.exec(session, "echo kept > src/state.txt")
    paused = sessions.pause(session)
    assert paused["status"] == "paused" and paused["saved_at"] and cloud.instances[session["remote_id"]].status == "paused"
    before = len(cloud.requests)
    result = sessions.exec(paused, "cat src/state.txt")
    assert isinstance(result, CommandResult) and result.output == "kept"
    assert [r["path"].rsplit("/", 1)[-1] for r in cloud.requests[before:]] == [session["remote_id"], "resume", "bash"]
    assert sessions.get(session["id"])["status"] == "running"


def test_a_lost_instance_is_replaced_from_the_last_saved_workspace(cloud):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    sessions.exec(session, "echo precious > src/data.txt")
    sessions.save(session)
    cloud.lose(session["remote_id"])
    reply = sessions.exec(session, "cat src/data.txt")
    assert isinstance(reply, str) and "lost and has been replaced" in reply and "restored the workspace saved at" in reply
    replaced = sessions.get(session["id"])
    assert replaced["remote_id"] != session["remote_id"] and replaced["status"] == "running"
    assert any(r["path"].endswith("/upload") for r in cloud.requests)
    again = sessions.exec(replaced, "cat src/data.txt")
    assert isinstance(again, CommandResult) and again.output == "precious"


def test_api_errors_are_retried_then_reported_in_one_sentence(cloud):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    cloud.fail("/bash", 503, times=1)
    result = sessions.exec(session, "echo after a hiccup")
    assert isinstance(result, CommandResult) and result.output == "after a hiccup"
    cloud.fail("/bash", 500, times=None)
    from mamabear.sandbox.backend import SandboxError

    with pytest.raises(SandboxError, match=r"Scrapybara could not run a command \(HTTP 500"):
        sessions.exec(session, "echo never")
    cloud.reset()


def test_a_command_that_times_out_on_the_instance(cloud):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    result = sessions.exec(session, "sleep 30", timeout_s=1)
    assert isinstance(result, CommandResult) and result.timed_out and result.exit_code is None


def test_bad_or_missing_key_is_one_sentence_and_exit_2(cli, cloud, monkeypatch):
    monkeypatch.setenv("SCRAPYBARA_API_KEY", "sb-wrong")
    refused = cli("sandbox", "start")
    assert refused.code == 2 and "Scrapybara refused the API key" in refused.err and "Traceback" not in refused.err
    monkeypatch.delenv("SCRAPYBARA_API_KEY")
    missing = cli("sandbox", "start", "--backend", "scrapybara")
    assert missing.code == 2 and "needs SCRAPYBARA_API_KEY" in missing.err


def test_idle_sessions_are_paused_and_their_hours_billed(cloud, isolated, tmp_path, monkeypatch):
    sessions = Services().sessions()
    session = sessions.start("scrapybara", "development")
    assert sessions.pause_idle() == []  # just used
    later = time.time() + 11 * 60
    assert sessions.pause_idle(now=later) == [session["id"]]
    row = sessions.get(session["id"])
    assert row["status"] == "paused" and row["active_seconds"] > 0
    assert cloud.instances[session["remote_id"]].status == "paused"


def test_a_crew_run_on_scrapybara_bills_its_hours_and_pauses_its_instance(cli, fake, cloud, isolated, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "sandbox.yaml").write_text("scrapybara:\n  usd_per_hour: 3600\n")  # a dollar a second
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "uname -s"}}])
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "browser_navigate", "arguments": {"url": "https://bears.example"}}])
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    doc = result.json()
    frame = [r for r in fake.chat_requests if FRAME in r["task"]]
    assert {"browser_navigate", "browser_screenshot"} <= {t["function"]["name"] for t in frame[0]["body"]["tools"]}
    assert "Linux" in frame[1]["text"] and "the browser is at https://bears.example" in frame[2]["text"]
    session = Services().sessions().get(doc["session_id"])
    assert session["status"] == "paused" and cloud.instances[session["remote_id"]].status == "paused"
    assert doc["totals"]["sandbox_seconds"] > 0 and doc["totals"]["sandbox_usd"] == pytest.approx(doc["totals"]["sandbox_seconds"], rel=1e-3)
    llm_usd = sum(t["cost_usd"] for t in doc["tasks"])
    assert doc["totals"]["cost_usd"] == pytest.approx(llm_usd + doc["totals"]["sandbox_usd"], abs=1e-5)
    listed = cli("runs", "list", "--json").json()[0]
    assert listed["cost_usd"] == pytest.approx(doc["totals"]["cost_usd"], abs=1e-5)  # the list counts the hours too


def test_a_run_stops_cleanly_when_the_key_is_refused(cli, fake, cloud, monkeypatch):
    monkeypatch.setenv("SCRAPYBARA_API_KEY", "sb-wrong")
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "ls"}}])
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 2, result.err
    doc = result.json()
    assert doc["status"] == "failed" and "Scrapybara refused the API key" in doc["error"]
    assert "Traceback" not in result.err and f"mamabear resume {doc['run_id']}" in result.err


def test_an_idle_instance_is_paused_while_the_agents_think_and_resumed_for_the_next_command(cli, fake, cloud, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "sandbox.yaml").write_text("idle_pause_minutes: 0.005\n")  # 0.3 s
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "echo one"}}])
    fake.add(task=FRAME, times=1, delay=1.5, tool_calls=[{"name": "bash", "arguments": {"command": "echo two"}}])
    result = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    tail = [r["path"].rsplit("/", 1)[-1] for r in cloud.requests if r["path"].rsplit("/", 1)[-1] in ("bash", "pause", "resume")]
    commands = [r["json"].get("command", "") for r in cloud.requests if r["path"].endswith("/bash")]
    one = next(i for i, c in enumerate(commands) if c.startswith("echo one"))
    assert "pause" in tail and "resume" in tail and tail.index("pause") < tail.index("resume")
    assert any(c.startswith("echo two") for c in commands[one:])


def test_resume_reattaches_the_paused_instance_of_the_run(cli, fake, cloud):
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "echo honey > note.txt"}}])
    fake.add(task="Identify and describe the data", status=400, times=2)
    failed = cli("run", "data_analysis", *QUESTION, "--base-url", fake.url, "--json", "--quiet").json()
    session = Services().sessions().get(failed["session_id"])
    assert failed["status"] == "failed" and session["status"] == "paused"  # not left running (and billing) after the run

    fake.add(task="Identify and describe the data", times=1, tool_calls=[{"name": "bash", "arguments": {"command": "cat note.txt"}}])
    before = len(cloud.requests)
    resumed = cli("resume", failed["run_id"], "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["session_id"] == session["id"]
    new = [r["path"] for r in cloud.requests[before:]]
    assert not any(p.endswith("/v1/start") for p in new) and any(p.endswith(f"{session['remote_id']}/resume") for p in new)
    collect = [r for r in fake.chat_requests if "Identify and describe the data" in r["task"] and r["status"] == 200]
    assert "honey" in collect[-1]["text"]


def test_a_pooled_instance_bills_each_run_only_its_own_time(cloud):
    from mamabear.sandbox.sessions import Context

    sessions = Services().sessions()
    pooled = sessions.start("scrapybara", "development", pooled=True)
    for run_id in ("run-a", "run-b"):
        session = sessions.resume(sessions.get(pooled["id"]), Context(run_id=run_id))
        assert session["run_id"] == run_id
        time.sleep(0.2)
        sessions.release(session)
    usage = {run_id: sessions.ledger.usage(run_id) for run_id in ("run-a", "run-b")}
    for run_id, rows in usage.items():
        assert len(rows) == 1 and 0.2 <= rows[0]["seconds"] < 1.0, (run_id, rows)
    assert sessions.get(pooled["id"])["status"] == "running"  # pooled: left running for the next run
