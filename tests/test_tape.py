"""--record and --replay: a crew run once against the scripted model server, then again from its recording alone."""

from __future__ import annotations

import json

SECRET = "tok-9f8e7d6c5b4a3210"
UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens there: a replay that called a model would fail


def test_a_recorded_run_replays_with_the_same_output_and_no_model_called(cli, fake, isolated, tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_API_TOKEN", SECRET)
    tape = tmp_path / "research.jsonl"
    inputs = ["-i", f"topic=honey bees, see {SECRET}"]
    model = ["--model", "openai/gpt-4.1-mini"]
    recorded = cli("run", "research", *inputs, *model, "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    asked = len(fake.chat_requests)
    lines = [json.loads(line) for line in tape.read_text().splitlines()]
    assert len(lines) == asked and [e["n"] for e in lines] == list(range(1, asked + 1))  # every exchange, in order
    assert {e["task"] for e in lines} == {t["task"] for t in recorded.json()["tasks"]}  # readable: who asked what
    assert SECRET not in tape.read_text() and "${ACME_API_TOKEN}" in tape.read_text()  # a reference, put back on replay
    for server in (["--base-url", UNREACHABLE], []):  # the same output every time; with no server and no key at all
        replayed = cli("run", "research", *inputs, *model, *server, "--replay", str(tape), "--json", "--quiet")
        assert replayed.code == 0, replayed.err
        assert replayed.json()["output"] == recorded.json()["output"]
        assert [t["output"] for t in replayed.json()["tasks"]] == [t["output"] for t in recorded.json()["tasks"]]
        assert replayed.json()["totals"]["cost_usd"] == 0
    assert len(fake.chat_requests) == asked  # zero requests


def test_a_replay_that_misses_stops_with_exit_2_naming_the_task_and_the_difference(cli, fake, isolated, tmp_path):
    tape = tmp_path / "research.jsonl"
    assert cli("run", "research", "-i", "topic=honey bees", "--base-url", fake.url, "--record", str(tape), "--quiet").code == 0
    first = json.loads(tape.read_text().splitlines()[0])["task"]
    missed = cli("run", "research", "-i", "topic=bumble bees", "--base-url", UNREACHABLE, "--replay", str(tape), "--json", "--quiet")
    assert missed.code == 2
    assert missed.json()["status"] == "failed"
    error = missed.json()["error"]
    assert f"task '{first}' asked the model something" in error and "differs at character" in error, error
    assert "honey" in error and "bumble" in error  # the recorded text and the new one, around the first difference
    assert "Traceback" not in missed.err


def test_a_recording_that_cannot_be_read_or_a_queued_replay_is_refused_before_the_run(cli, isolated, tmp_path):
    missing = cli("run", "research", "-i", "topic=x", "--replay", str(tmp_path / "none.jsonl"))
    assert missing.code == 2 and "cannot read the recording" in missing.err
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"key": "k", "task": "t"}\nnot json\n')
    bad = cli("run", "research", "-i", "topic=x", "--replay", str(broken))
    assert bad.code == 2 and "broken.jsonl:2: not a recorded exchange" in bad.err
    queued = cli("run", "research", "-i", "topic=x", "--replay", str(broken), "--queue")
    assert queued.code == 2 and "cannot with --queue" in queued.err
    assert cli("runs", "list", "--json").json() == []  # nothing was recorded as a run
