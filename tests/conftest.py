"""Shared fixtures: an isolated MAMABEAR_HOME, no provider keys, and the scripted model server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakellm import FakeLLM  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROVIDER_KEYS = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "MAMABEAR_MODEL",
    "MAMABEAR_BASE_URL",
    "MAMABEAR_API_KEY",
    "MAMABEAR_CONFIG_DIR",
    "MAMABEAR_DATABASE_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "SCRAPYBARA_API_KEY",
    "SCRAPYBARA_BASE_URL",
    "SERPER_API_KEY",
    "TAVILY_API_KEY",
    "BRAVE_API_KEY",
    "EXA_API_KEY",
    "MAMABEAR_SANDBOX",
    "MAMABEAR_CHROMA_URL",
    "MAMABEAR_CACHE_URL",
    "MAMABEAR_NO_CACHE",
)


@pytest.fixture(scope="session")
def fake() -> FakeLLM:
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """Every test gets its own home and working directory and sees no real provider key."""
    for key in PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key in [k for k in os.environ if k.startswith(("OTEL_", "LANGFUSE_"))]:  # no trace leaves a test unless it asks
        monkeypatch.delenv(key)
    if "memory_on" in request.keywords:
        monkeypatch.delenv("MAMABEAR_NO_MEMORY", raising=False)
    else:  # memory makes model calls of its own (recall analysis, saving); other features' tests count calls without them
        monkeypatch.setenv("MAMABEAR_NO_MEMORY", "1")
    home = tmp_path / "home"
    monkeypatch.setenv("MAMABEAR_HOME", str(home))
    monkeypatch.setenv("CREWAI_STORAGE_DIR", str(tmp_path / "crewai"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    # The scripted server stands in for a gateway to the providers' own models, priced as theirs (a --base-url server's
    # models are otherwise priced by prices: alone); tests of that default remove it.
    monkeypatch.setenv("MAMABEAR_BASE_URL_PRICES", "litellm")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
    if not _jail_here():  # the sandbox tests still run, unjailed; tests/test_jail.py is skipped and says why
        monkeypatch.setenv("MAMABEAR_ISOLATION", "best-effort")
    return home


TEMPLATE = Path(__import__("crewai_cli").__file__).parent / "templates" / "crew"


@pytest.fixture
def template_project(isolated, monkeypatch, tmp_path) -> Path:  # noqa: ANN001
    """What `crewai create crew latest_ai` writes (its prompts for a provider and key aside): src/latest_ai/ from the template."""
    root = tmp_path / "latest_ai"
    package = root / "src" / "latest_ai"
    (package / "config").mkdir(parents=True)
    for name in ("agents.yaml", "tasks.yaml"):
        (package / "config" / name).write_text((TEMPLATE / "config" / name).read_text())
    (package / "crew.py").write_text((TEMPLATE / "crew.py").read_text().replace("{{crew_name}}", "LatestAi"))
    (package / "__init__.py").write_text("")
    monkeypatch.chdir(root)
    return root


def _jail_here() -> bool:
    from mamabear.sandbox.jail import support

    return support().jail


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):  # noqa: ANN201
        import json

        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # noqa: ANN201
    """Run the real CLI in this process: cli("run", "research", ...) -> Result(code, out, err)."""
    from mamabear.cli import main

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    env.update(extra)
    return env


def store_for(home: Path):  # noqa: ANN201 - a mamabear.store.database.Store
    from mamabear.store.database import Store

    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def start_mamabear(home: Path, *args: str, cwd: Path = REPO) -> subprocess.Popen:
    """`mamabear ARGS` in a process of its own, as a user starts it, on the given home (in ``cwd``: a project's root)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mamabear", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(MAMABEAR_HOME=str(home)),
        cwd=cwd,
    )


def killed_at(fake, home: Path, task: str, *args: str, cwd: Path = REPO) -> None:  # noqa: ANN001 - the fake model server
    """`mamabear ARGS` started as a user starts it, SIGKILLed once the model server has the first call of ``task``
    (a rule of the test makes that call hang); it must still be running then, or its stderr says why not."""
    proc = start_mamabear(home, *args, cwd=cwd)
    try:
        wait_for(lambda: [r for r in fake.chat_requests if task in r["task"]] or proc.poll() is not None, what=f"the first call of '{task}'")
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.kill()
        proc.wait(timeout=30)


def resumed_without_repeats(cli, fake, done_task: str, calls: int) -> dict:  # noqa: ANN001 - the CLI runner and the model server
    """Resume the last run; ``done_task`` (a task done before the kill) must still have had only ``calls`` calls."""
    run_id = cli("runs", "list", "--json").json()[0]["id"]
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    assert len([r for r in fake.chat_requests if done_task in r["task"]]) == calls  # the done task is not asked again
    return resumed.json()


def wait_for(condition, timeout: float = 90.0, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def host_processes(marker: str) -> list[int]:
    """Pids (as this machine sees them) of processes whose command line holds ``marker``: a jail's own pids differ."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found
