"""No secret reaches a file under $MAMABEAR_HOME: the run store, the response cache, memory, traces, checkpoints, logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env

pytestmark = pytest.mark.memory_on

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"


def files_holding(home: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and needle in p.read_bytes())


def test_a_planted_secret_is_in_no_file_after_runs_that_use_memory_cache_and_checkpoints(fake, isolated):
    env = subprocess_env(MAMABEAR_HOME=str(isolated), OPENAI_API_KEY=SECRET)
    # The key in a task input: in prompts, answers, memories, recall queries. The scripted model's answers quote the
    # first 80 characters of the task, which cut the key in two here: its first 10 characters end an answer.
    topic = f"how, in a few careful steps, to rotate the key {SECRET} safely"
    # The second task outlives the time limit (which counts from the command's start, start-up included, so it leaves
    # room for a loaded machine): the run keeps its checkpoint.
    fake.add(task="Check every claim", delay=30.0, times=1)
    stopped = subprocess.run(
        [sys.executable, "-m", "mamabear", "run", "research", "-i", f"topic={topic}", "--base-url", fake.url, "--max-duration", "15s", "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
    )
    assert stopped.returncode == 4, stopped.stderr
    assert any(r["text"].count(SECRET[:10]) > r["text"].count(SECRET) for r in fake.chat_requests)  # a cut copy went round
    assert list((isolated / "checkpoints").rglob("*.json")) and files_holding(isolated, SECRET.encode()) == []
    assert files_holding(isolated, SECRET[:10].encode()) == []  # 4d96280: the cut key was left in the checkpoint
    run_id = json.loads(
        subprocess.run([sys.executable, "-m", "mamabear", "runs", "list", "--json"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60).stdout
    )[0]["id"]
    before = len(fake.chat_requests)
    resumed = subprocess.run(
        [sys.executable, "-m", "mamabear", "resume", run_id, "--max-duration", "10m", "--quiet"], capture_output=True, text=True, cwd=REPO, env=env, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr  # the input is stored as ${OPENAI_API_KEY} and put back from the environment
    assert len(fake.chat_requests) > before
    done = subprocess.run(
        [sys.executable, "-m", "mamabear", "run", "research", "-i", f"topic={topic}", "--base-url", fake.url, "--quiet"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert any(SECRET in r["text"] for r in fake.chat_requests)  # it was really used...
    assert (isolated / "cache.db").exists()
    assert files_holding(isolated, SECRET.encode()) == []  # ...and is in no file (memory-recall events and cache.db held it on 4d96280)


def test_a_stored_reference_to_a_secret_needs_the_variable_to_resume() -> None:
    from mamabear.config.redact import Redactor, dereferenced
    from mamabear.errors import UsageError

    redact = Redactor({"OPENAI_API_KEY": SECRET, "HOME": "/root/some/where"})
    stored = redact.referenced(f"rotate {SECRET} in ${{HOME}}")
    assert stored == "rotate ${OPENAI_API_KEY} in ${HOME}"
    assert dereferenced(stored, {"OPENAI_API_KEY": SECRET}, "input topic") == f"rotate {SECRET} in ${{HOME}}"  # only ours come back
    with pytest.raises(UsageError, match="input topic used the value of OPENAI_API_KEY, which is not set now"):
        dereferenced(stored, {}, "input topic")


def test_what_is_left_of_a_cut_secret_is_masked_but_a_longer_word_is_not() -> None:
    from mamabear.config.redact import Redactor

    redact = Redactor({"OPENAI_API_KEY": SECRET})
    assert redact(f'"raw": "rotate the key {SECRET[:9]}"') == '"raw": "rotate the key [REDACTED]"'  # an answer cut at its limit
    assert redact(f"...{SECRET[-12:]} was leaked") == "...[REDACTED] was leaked"  # a line shortened from the left
    assert redact(f"{SECRET}{SECRET[:7]}") == "[REDACTED][REDACTED]"
    assert redact(f"{SECRET[:12]}X9") == f"{SECRET[:12]}X9"  # another word that starts alike is not a cut secret
    assert redact.referenced(f"use {SECRET} not {SECRET[:8]}") == "use ${OPENAI_API_KEY} not [REDACTED]"


def test_a_secret_an_agent_re_encodes_is_masked_in_everything_stored(cli, fake, isolated, monkeypatch) -> None:
    """Found in the pool review: `printf %s "$SECRET" | base64` (or `| rev`) left the encoded key in tasks.output,
    tool_calls.output and sandbox_actions.output."""
    from mamabear.config.redact import encoded
    from test_mission_run import CONFIRM, HELLO_PLAN, PLANNER

    monkeypatch.setenv("ACME_API_TOKEN", SECRET)
    commands = [f'printf %s "{SECRET}" | base64', f'printf %s "{SECRET}" | rev', f"printf %s \"{SECRET}\" | od -An -tx1 | tr -d ' \\n'"]
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    for command in commands:
        fake.add(task="Write the greeting file", times=1, tool_calls=[{"name": "bash", "arguments": {"command": command}}])
    fake.add(task="Write the greeting file", times=1, tool_calls=[{"name": "file_create", "arguments": {"path": "hello.txt", "file_text": "hi\n"}}])
    fake.add(task="Write the greeting file", times=1, text="Encoded it three ways, and wrote hello.txt.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')
    result = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--json", "--quiet")
    assert result.code == 0, result.err
    answers = [r["text"] for r in fake.chat_requests if "Write the greeting file" in r["task"]]
    forms = encoded(SECRET)
    assert answers[-1].count("[REDACTED]\n[exit code 0]") == 3  # each command's output was the secret, encoded: masked
    assert not [form for form in forms for text in answers if form in text]  # even the model is not shown it
    shown = cli("runs", "show", result.json()["run_id"], "--json").out + cli("runs", "logs", result.json()["run_id"], "--json").out
    assert not [form for form in forms if form in shown]
    stored = [p for form in forms for p in files_holding(isolated, form.encode())]
    assert stored == [], stored


def test_each_common_encoding_of_a_secret_is_masked() -> None:
    import base64
    from urllib.parse import quote

    from mamabear.config.redact import Redactor

    secret = "p@ss/w0rd+Long:9"
    redact = Redactor({"DB_PASSWORD": secret})
    raw = secret.encode()
    forms = (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex(), raw.hex().upper(), quote(secret, safe=""))
    for form in (*forms, secret[::-1]):
        assert redact(f"out: {form}\n") == "out: [REDACTED]\n", form
    assert redact("plain words stay") == "plain words stay"
    assert Redactor({"DB_PASSWORD": secret}).referenced(f"use {secret}") == "use ${DB_PASSWORD}"  # a reference still


def test_a_resumed_run_is_given_the_real_values_never_the_mask(fake, isolated) -> None:
    """A secret in task 1's output (from its input) is stored as ${ACME_API_TOKEN}; after a stop and a resume, the next
    tasks' prompts hold the value again, as attempt 1's would have, not `[REDACTED]`."""
    env = subprocess_env(MAMABEAR_HOME=str(isolated), ACME_API_TOKEN=SECRET)
    fake.add(task="Research", times=1, text=f"Rotate {SECRET} first.")
    fake.add(task="Check every claim", delay=30.0, times=1)  # outlives the time limit: the run stops after task 1
    run = [sys.executable, "-m", "mamabear", "run", "research", "-i", "topic=key rotation", "--base-url", fake.url, "--quiet"]
    stopped = subprocess.run([*run, "--max-duration", "12s"], capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert stopped.returncode == 4, stopped.stderr
    assert files_holding(isolated, SECRET.encode()) == []
    run_id = json.loads(subprocess.run([sys.executable, "-m", "mamabear", "runs", "list", "--json"], capture_output=True, text=True, cwd=REPO, env=env).stdout)[
        0
    ]["id"]
    before = len(fake.chat_requests)
    resumed = subprocess.run([sys.executable, "-m", "mamabear", "resume", run_id, "--quiet"], capture_output=True, text=True, cwd=REPO, env=env, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    later = [r["text"] for r in fake.chat_requests[before:] if "Current Task" in r["text"]]
    assert later and all(SECRET in text for text in later)  # task 1's output, as context, with the real value
    assert not any("[REDACTED]" in text or "${ACME_API_TOKEN}" in text for text in later)
    assert files_holding(isolated, SECRET.encode()) == []
