"""The command-line contract for commands that do not run a crew: JSON shapes, exit codes, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env
from test_catalog import SPECIALISTS


def test_version(cli):
    from mamabear import __version__

    result = cli("--version")
    assert result.code == 0 and result.out.strip() == f"mamabear {__version__}"


def test_agents_list_and_show_json(cli):
    listed = cli("agents", "list", "--json")
    assert listed.code == 0
    assert {a["id"]: (a["tier"], a["temperature"]) for a in listed.json()} == SPECIALISTS
    shown = cli("agents", "show", "scout_commander", "--json").json()
    assert shown["role"] == "Scout Commander" and shown["models"][0].startswith("gemini/")


def test_crews_list_and_show_json(cli):
    names = {c["name"] for c in cli("crews", "list", "--json").json()}
    assert {"research", "development", "data_analysis", "full_team"} <= names
    crew = cli("crews", "show", "research", "--json").json()
    assert [t["task"] for t in crew["tasks"]] == ["research_topic", "fact_check", "write_report"]
    assert crew["inputs"][0] == {"name": "topic", "description": "What to research.", "required": True, "default": None}


def test_validate_ok_and_broken(cli, tmp_path, monkeypatch):
    ok = cli("validate", "--json")
    assert ok.code == 0 and ok.json()["ok"] is True and ok.json()["agents"] == 7
    (Path.cwd() / "crews").mkdir()
    (Path.cwd() / "crews" / "bad.yaml").write_text("agents: [research_specialist]\ntasks:\n  - research_topic\n  - ghost_task\n")
    broken = cli("validate", "--json")
    assert broken.code == 2
    errors = broken.json()["errors"]
    assert len(errors) == 1 and "crews/bad.yaml:2" in errors[0] and "ghost_task" in errors[0]
    text = cli("validate")
    assert text.code == 2 and "crews/bad.yaml:2" in text.err and "Traceback" not in text.err


def test_broken_yaml_is_one_sentence_with_file_and_line(cli):
    (Path.cwd() / "config").mkdir()
    (Path.cwd() / "config" / "agents.yaml").write_text("a:\n  role: [x\n")
    result = cli("agents", "list")
    assert result.code == 2
    assert "config/agents.yaml:3" in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("args, needle", [
    (["run", "nope"], "no crew named 'nope'"),
    (["run", "research"], "needs input 'topic'"),
    (["run", "research", "-i", "topic"], "-i topic: inputs are written KEY=VALUE"),
    (["run", "research", "-i", "topic=x", "-i", "colour=red"], "has no input 'colour'"),
    (["agents", "show", "ghost"], "no agent named 'ghost'"),
    (["runs", "show", "nope"], "no run with id 'nope'"),
])
def test_bad_input_exits_2_with_one_sentence(cli, args, needle):
    result = cli(*args)
    assert result.code == 2, result.err
    assert needle in result.err and "Traceback" not in result.err


def test_running_a_crew_with_an_unknown_agent_names_file_and_line(cli):
    (Path.cwd() / "crews").mkdir()
    (Path.cwd() / "crews" / "mine.yaml").write_text("description: mine\nagents: [research_specialist, yeti]\ntasks: [research_topic]\n")
    result = cli("run", "mine", "-i", "topic=x", "--dry-run")
    assert result.code == 2 and "crews/mine.yaml:2" in result.err and "unknown agent 'yeti'" in result.err


def test_no_key_names_the_variables_that_fix_it(cli):
    result = cli("run", "research", "-i", "topic=bees")
    assert result.code == 2
    assert "GEMINI_API_KEY" in result.err and "--base-url" in result.err


def test_json_error_is_one_document(cli):
    result = cli("run", "nope", "--json")
    doc = result.json()  # stdout parses as exactly one document
    assert result.code == 2 and set(doc) == {"error", "exit_code"} and doc["exit_code"] == 2
    assert doc["error"].startswith("no crew named 'nope'")


def test_bad_flag_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "mamabear", "runs", "list", "--bogus"], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "No such option" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "mamabear", "runs", "list", "--limit", "zero"], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_dry_run_without_any_key_prints_the_plan_and_calls_nothing(cli, fake):
    result = cli("run", "full_team", "-i", "mission=map the bears", "--dry-run", "--json")
    assert result.code == 0
    plan = result.json()
    assert plan["dry_run"] is True and plan["process"] == "hierarchical" and plan["manager"] == "scout_commander"
    assert {a["id"] for a in plan["agents"]} == set(SPECIALISTS)
    assert plan["inputs"] == {"mission": "map the bears"}
    assert plan["problems"] and "GEMINI_API_KEY" in plan["problems"][0]
    assert fake.requests == []
    text = cli("run", "development", "-i", "goal=x", "--dry-run")
    assert text.code == 0 and "implement_solution" in text.out and "gemini/gemini-2.5-pro" in text.out


def test_dry_run_with_base_url_routes_everything_there(cli, fake):
    plan = cli("run", "research", "-i", "topic=t", "--dry-run", "--json", "--base-url", fake.url).json()
    assert plan["problems"] == []
    assert all(a["route"]["base_url"] == fake.url for a in plan["agents"])
    assert fake.requests == []


def test_doctor_reports_checks(cli, fake, monkeypatch):
    bad = cli("doctor", "--json")
    assert bad.code == 2
    checks = {c["name"]: c for c in bad.json()["checks"]}
    assert checks["models"]["status"] == "fail" and checks["config"]["status"] == "ok"
    monkeypatch.setenv("MAMABEAR_BASE_URL", fake.url)
    good = cli("doctor", "--json")
    assert good.code == 0 and good.json()["ok"] is True
    names = {c["name"] for c in good.json()["checks"]}
    assert {"python", "crewai", "store", "privacy", "models.pro"} <= names


def test_commands_that_run_no_crew_do_not_import_crewai():
    code = ("import sys; from mamabear.cli import main; main(['agents', 'list']); main(['crews', 'list']); "
            "main(['run', 'research', '-i', 'topic=x', '--dry-run']); print(sorted(m for m in sys.modules if m.startswith(('crewai', 'litellm'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_precedence_flag_over_environment_over_dotenv(cli, monkeypatch):
    (Path.cwd() / ".env").write_text("MAMABEAR_BASE_URL=http://127.0.0.1:1111/v1\nMAMABEAR_MODEL=from-dotenv\n")

    def route() -> dict:
        result = cli("run", "research", "-i", "topic=t", "--dry-run", "--json", *extra)
        return result.json()["agents"][0]["route"]

    extra: list[str] = []
    assert route() == {"model": "from-dotenv", "provider": "openai", "base_url": "http://127.0.0.1:1111/v1"}
    monkeypatch.setenv("MAMABEAR_MODEL", "from-env")
    assert route()["model"] == "from-env"
    extra = ["--model", "from-flag", "--base-url", "http://127.0.0.1:2222/v1"]
    assert route() == {"model": "from-flag", "provider": "openai", "base_url": "http://127.0.0.1:2222/v1"}
