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


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "nope"], "no crew named 'nope'"),
        (["run", "research"], "needs input 'topic'"),
        (["run", "research", "-i", "topic"], "-i topic: inputs are written KEY=VALUE"),
        (["run", "research", "-i", "topic=x", "-i", "colour=red"], "has no input 'colour'"),
        (["agents", "show", "ghost"], "no agent named 'ghost'"),
        (["runs", "show", "nope"], "no run with id 'nope'"),
        (["run", "research", "-i", "topic=x", "--budget-usd", "nan"], "--budget-usd nan: a budget must be a finite amount"),
        (["run", "research", "-i", "topic=x", "--budget-usd", "inf"], "--budget-usd inf: a budget must be a finite amount"),
        (["run", "research", "-i", "topic=x", "--max-duration", "inf"], "--max-duration 'inf': the duration must be a finite"),
        (["run", "research", "-i", "topic=x", "--max-duration", "nan"], "--max-duration 'nan': the duration must be a finite"),
        (["run", "research", "-i", "topic=x", "--base-url", "notaurl"], "--base-url 'notaurl' (or MAMABEAR_BASE_URL) is not a server URL"),
        (["run", "research", "-i", "topic=x", "--base-url", "http://host:port/v1", "--dry-run"], "is not a server URL"),
    ],
)
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
    proc = subprocess.run(
        [sys.executable, "-m", "mamabear", "runs", "list", "--bogus"], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=60
    )
    assert proc.returncode == 2 and "No such option" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "mamabear", "runs", "list", "--limit", "zero"], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=60
    )
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
    code = (
        "import sys; from mamabear.cli import main; main(['agents', 'list']); main(['crews', 'list']); "
        "main(['run', 'research', '-i', 'topic=x', '--dry-run']); print(sorted(m for m in sys.modules if m.startswith(('crewai', 'litellm'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_precedence_flag_over_environment_over_dotenv(cli, monkeypatch):
    (Path.cwd() / ".env").write_text("MAMABEAR_BASE_URL=http://127.0.0.1:1111/v1\nMAMABEAR_MODEL=from-dotenv\n")

    def route() -> dict:
        result = cli("run", "research", "-i", "topic=t", "--dry-run", "--json", *extra)
        return result.json()["agents"][0]["route"]

    extra: list[str] = []
    assert route() == {"model": "from-dotenv", "provider": "openai", "base_url": "http://127.0.0.1:1111/v1", "max_tokens": 8192}
    monkeypatch.setenv("MAMABEAR_MODEL", "from-env")
    assert route()["model"] == "from-env"
    extra = ["--model", "from-flag", "--base-url", "http://127.0.0.1:2222/v1"]
    assert route() == {"model": "from-flag", "provider": "openai", "base_url": "http://127.0.0.1:2222/v1", "max_tokens": 8192}


@pytest.mark.parametrize(
    "args, needle, command",
    [
        (["run", "research", "--bogus"], "No such option: --bogus", "mamabear run"),
        (["run"], "is neither a CrewAI project nor one of mamabear's; name a crew", "mamabear run"),
        (["runs", "list", "--limit", "zero"], "'--limit'", "mamabear runs list"),
    ],
)
def test_usage_errors_are_one_sentence_that_points_at_help(cli, args, needle, command):
    result = cli(*args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.err
    assert f"`{command} --help`" in lines[0]


def test_help_names_values_and_shows_no_python_types(cli):
    from mamabear.cli import command

    def paths(cmd, prefix):  # noqa: ANN001, ANN202
        yield prefix
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from paths(sub, [*prefix, name])

    for path in paths(command(), []):
        text = cli(*path, "--help").out
        assert "Usage: mamabear" in text
        for label in ("<str>", "<bool>", "<int>", "<float>", "<Path>"):
            assert label not in text, (path, label)
    assert "--model" in cli("run", "--help").out and "MODEL" in cli("run", "--help").out


def test_unknown_names_get_a_suggestion(cli):
    assert "did you mean 'research'?" in cli("run", "reserch").err
    assert "did you mean 'research_specialist'?" in cli("agents", "show", "research").err


def test_piped_output_has_no_trailing_spaces_and_long_errors_are_one_line(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # left over from a terminal: piped cells must still not be cut to "…"
    assert "…" not in cli("doctor").out
    listed = cli("agents", "list")
    assert listed.code == 0 and listed.out.count("\n") >= 8
    assert all(line == line.rstrip() for line in listed.out.splitlines())
    long_name = "x" * 300
    result = cli("run", long_name)
    assert len(result.err.strip().splitlines()) == 1 and long_name in result.err


def test_validate_reports_every_broken_config_file_in_one_run(cli):
    config = Path.cwd() / "config"
    config.mkdir()
    (config / "agents.yaml").write_text("a:\n  role: [x\n")
    (config / "tasks.yaml").write_text("t1:\n  description: x\n  expected_output: y\n  colour: red\nt2:\n  description: x\n")
    (config / "models.yaml").write_text("tiers: [\n")
    result = cli("validate", "--json")
    assert result.code == 2
    errors = result.json()["errors"]
    assert [e.split(": ", 1)[0].rsplit("/", 2)[-2:] for e in errors] == [
        ["config", "agents.yaml:3"],
        ["config", "tasks.yaml:4"],
        ["config", "tasks.yaml:6"],
        ["config", "models.yaml:2"],
    ]


def test_doctor_asks_each_provider_and_fails_when_none_answers(cli, fake):
    from socket import socket

    with socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    down = cli("doctor", "--base-url", dead, "--json")
    assert down.code == 2
    failed = [c for c in down.json()["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == [f"provider {dead}"] and "cannot reach" in failed[0]["detail"]
    unparsable = cli("doctor", "--base-url", "http://[::1")  # a URL that cannot even be parsed: a sentence, not a traceback
    assert unparsable.code == 2 and "is not a server URL" in unparsable.out and "Traceback" not in unparsable.err
    fake.served = ["gpt-4.1-mini"]
    fake.add(contains="Call the ping tool", tool_calls=[{"name": "ping", "arguments": {}}])
    up = cli("doctor", "--base-url", fake.url, "--model", "openai/gpt-4.1-mini", "--json")
    assert up.code == 0, up.out
    # Small requests, to the server given only: its models list (reachable, and what it serves), a tool call, a json_schema answer.
    assert [r["path"] for r in fake.requests] == ["/v1/models", "/v1/chat/completions", "/v1/chat/completions"]
    assert all(r["body"]["max_tokens"] == 16 for r in fake.chat_requests)
    checks = {c["name"]: c for c in up.json()["checks"]}
    assert checks[f"provider {fake.url}"]["status"] == "ok" and checks["models.pro"]["detail"].startswith("openai/gpt-4.1-mini")
    assert checks["served models"]["status"] == "ok" and checks[f"tool calls at {fake.url}"]["status"] == "ok"


def test_doctor_says_a_model_the_server_does_not_serve_and_what_it_cannot_take(cli, fake):
    fake.served, fake.json_schema = ["smollm2"], False  # llama-cpp-python: one model, no json_schema
    doc = cli("doctor", "--base-url", fake.url, "--model", "openai/nonexistent-model", "--json").json()
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["served models"]["status"] == "warn" and "lists smollm2, not openai/nonexistent-model" in checks["served models"]["detail"]
    assert "Pass --model smollm2" in checks["served models"]["detail"]
    assert checks[f"structured output at {fake.url}"]["status"] == "warn" and "HTTP 500" in checks[f"structured output at {fake.url}"]["detail"]
    assert checks[f"tool calls at {fake.url}"]["status"] == "warn"  # the scripted model answered in words


def test_dry_run_warnings_go_to_stderr_and_stdout_stays_the_plan(cli):
    text = cli("run", "research", "-i", "topic=x", "--dry-run")
    assert text.code == 0 and "research_topic" in text.out and "warning:" not in text.out
    assert "warning:" in text.err and "GEMINI_API_KEY" in text.err


def test_shell_completion_completes_crew_names():
    proc = subprocess.run(
        [sys.executable, "-m", "mamabear"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=subprocess_env(_MAMABEAR_COMPLETE="complete_bash", COMP_WORDS="mamabear run res", COMP_CWORD="2"),
    )
    assert proc.stdout.split() == ["research"], proc.stderr
    assert (
        "--install-completion"
        in subprocess.run([sys.executable, "-m", "mamabear", "--help"], capture_output=True, text=True, cwd=REPO, timeout=60, env=subprocess_env()).stdout
    )


BOMB = "".join(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True))  # 9^8 values


@pytest.mark.parametrize(
    "crew, needle",
    [
        (b"description: caf\xe9\nagents: [research_specialist]\ntasks: [research_topic]\n", "crews/x.yaml:1: not UTF-8 text (byte 0xe9)"),
        (
            ("agents: [research_specialist]\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + BOMB + "tasks:\n  - task: *h\n").encode(),
            "aliases expand to more than 100,000 values",
        ),
        (
            (
                "agents: [research_specialist]\ntasks: [research_topic]\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                + BOMB
                + "inputs:\n  - name: topic\n    default: *h\n"
            ).encode(),
            "aliases expand to more than 100,000 values",
        ),
        (b"description: big\n" + b"# padding\n" * 120_000, "too large for a config file"),
    ],
    ids=["not-utf8", "alias-bomb-in-tasks", "alias-bomb-in-a-default", "too-large"],
)
def test_hostile_yaml_is_refused_with_file_and_line(cli, crew, needle):
    (Path.cwd() / "crews").mkdir()
    (Path.cwd() / "crews" / "x.yaml").write_bytes(crew)
    result = cli("validate")  # on 4d96280: a traceback, or gigabytes of memory and no end
    assert result.code == 2 and needle in result.err and "Traceback" not in result.err, result.err


def test_a_home_that_is_a_file_and_an_input_that_is_not_utf8_are_one_sentence(cli, fake, isolated, monkeypatch):
    isolated.parent.mkdir(parents=True, exist_ok=True)
    isolated.write_text("not a folder")
    refused = cli("runs", "list")
    assert refused.code == 2 and "point MAMABEAR_HOME at a directory" in refused.err
    monkeypatch.setenv("MAMABEAR_HOME", str(isolated.parent / "home2"))
    bad = cli("run", "research", "-i", "topic=caf\udce9", "--base-url", fake.url)  # how Python hands over a non-UTF-8 argument
    assert bad.code == 2 and "is not UTF-8 text" in bad.err and fake.requests == []  # before any model call


def test_a_model_without_a_price_is_loud_and_a_budget_that_cannot_count_refuses_to_start(cli, fake, monkeypatch):
    from mamabear.llm import pricing

    unknown = ["--base-url", fake.url, "--model", "openai/my-finetune"]
    dry = cli("run", "research", "-i", "topic=x", "--dry-run", *unknown)
    assert dry.code == 0 and "no price is known for openai/my-finetune" in dry.err
    refused = cli("run", "research", "-i", "topic=x", "--budget-usd", "1", *unknown)
    assert refused.code == 2 and "--budget-usd 1 cannot be held" in refused.err and fake.chat_requests == []
    doctor = cli("doctor", "--json", *unknown)
    assert doctor.code == 2 and {c["name"]: c["status"] for c in doctor.json()["checks"]}["prices"] == "fail"

    (Path.cwd() / "config").mkdir()
    (Path.cwd() / "config" / "models.yaml").write_text("prices:\n  openai/my-finetune: {input: 0.5, output: 1.5}\n")
    assert cli("run", "research", "-i", "topic=x", "--dry-run", *unknown).err.count("no price is known") == 0

    # litellm's cost map gone (moved or renamed by an upgrade): every price is unknown, and it says so instead of $0
    monkeypatch.setattr(pricing, "cost_map", lambda: {})
    asked = len(fake.chat_requests)  # doctor's two probes of what the server takes
    gone = cli("run", "research", "-i", "topic=x", "--budget-usd", "1", "--base-url", fake.url)
    assert gone.code == 2 and "no price is known for openai/gpt-4.1" in gone.err and len(fake.chat_requests) == asked


def test_a_damaged_store_a_missing_config_dir_and_an_unknown_sandbox_are_one_sentence(cli, isolated, monkeypatch):
    isolated.mkdir(parents=True, exist_ok=True)
    damaged = b"this is not a database, it was overwritten" * 200
    (isolated / "mamabear.db").write_bytes(damaged)
    for args in (["runs", "list"], ["doctor"]):  # on 4d96280: tracebacks of 72-156 lines
        result = cli(*args)
        assert result.code == 2 and "is damaged" in result.err + result.out and "Traceback" not in result.err, result.err
    assert (isolated / "mamabear.db").read_bytes() == damaged  # left as it was, for recovery
    (isolated / "mamabear.db").unlink()

    assert (
        "--sandbox docker (or MAMABEAR_SANDBOX): the backends are local, scrapybara"
        in cli("run", "research", "-i", "topic=x", "--sandbox", "docker", "--dry-run").err
    )  # research gives no agent a tool
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(isolated / "nowhere"))
    nowhere = cli("crews", "list")
    assert nowhere.code == 2 and "MAMABEAR_CONFIG_DIR" in nowhere.err and "is not a directory" in nowhere.err


def test_inputs_come_from_a_yaml_or_json_file_or_stdin_and_i_wins(cli, monkeypatch, tmp_path):
    import io

    (tmp_path / "in.yaml").write_text("topic: sea otters\naudience: children\n")
    planned = cli("run", "research", "--inputs", str(tmp_path / "in.yaml"), "-i", "audience=divers", "--dry-run", "--json", "--model", "openai/gpt-4.1-mini")
    assert planned.code == 0 and planned.json()["inputs"] == {"topic": "sea otters", "audience": "divers"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"topic": "owls", "audience": 7}'))
    from_stdin = cli("run", "research", "--inputs", "-", "--dry-run", "--json", "--model", "openai/gpt-4.1-mini")
    assert from_stdin.code == 0 and from_stdin.json()["inputs"] == {"topic": "owls", "audience": "7"}
    (tmp_path / "list.yaml").write_text("- topic\n")
    (tmp_path / "nested.json").write_text('{"topic": {"a": 1}}')
    for name, message in (
        ("list.yaml", "must be a mapping of input names to values"),
        ("nested.json", "input 'topic' must be text or a number"),
        ("nope.yaml", "cannot read it"),
    ):
        bad = cli("run", "research", "--inputs", str(tmp_path / name), "--dry-run")
        assert bad.code == 2 and message in bad.err and "Traceback" not in bad.err
