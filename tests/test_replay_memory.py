"""Record and replay with memory on, the default: a tape holds what each recall gave, so a replay recalls the same
whatever the store holds by then, asks no model, and changes no memory."""

from __future__ import annotations

import json

import pytest

from test_mission_run import HELLO_PLAN, PLANNER, writes_the_greeting

pytestmark = pytest.mark.memory_on
UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens there: a replay that called a model would fail


def memories(cli) -> list[str]:  # noqa: ANN001 - the CLI runner
    return [m["content"] for m in cli("memory", "list", "--limit", "500", "--json").json()]


def test_a_memory_on_run_replays_the_same_requests_and_output_though_the_memory_has_changed(cli, fake, isolated, tmp_path):
    assert cli("memory", "add", "Honey bees dance to tell the hive where the flowers are.").code == 0
    tape = tmp_path / "research.jsonl"
    args = ["run", "research", "-i", "topic=honey bees", "--model", "openai/gpt-4.1-mini"]
    recorded = cli(*args, "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    assert len(fake.chat_requests) == 3  # the memory made no model call of its own
    recalls = [json.loads(line) for line in tape.read_text().splitlines() if '"kind": "recall"' in line]
    assert recalls and any("dance" in m["record"]["content"] for r in recalls for m in r["matches"])
    # What a live recall would find now differs: the recorded run's own results, and a new memory on the topic.
    assert cli("memory", "add", "Honey bees beat their wings 230 times a second.").code == 0
    kept = memories(cli)
    asked = len(fake.chat_requests)
    replayed = cli(*args, "--base-url", UNREACHABLE, "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    assert replayed.json()["output"] == recorded.json()["output"]
    assert [t["output"] for t in replayed.json()["tasks"]] == [t["output"] for t in recorded.json()["tasks"]]
    assert len(fake.chat_requests) == asked and replayed.json()["totals"]["cost_usd"] == 0
    assert memories(cli) == kept  # a replay changes no memory


def test_a_memory_on_mission_replays_from_its_recording(cli, fake, isolated, tmp_path):
    fake.add(contains=PLANNER, times=1, text=json.dumps(HELLO_PLAN))
    writes_the_greeting(fake)
    tape = tmp_path / "mission.jsonl"
    recorded = cli("mission", "leave a greeting in hello.txt", "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    asked = len(fake.chat_requests)
    assert asked == 4  # plan, two calls of the item, the confirmation: no memory call
    replayed = cli("mission", "leave a greeting in hello.txt", "--base-url", UNREACHABLE, "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    assert [t["task"] for t in replayed.json()["tasks"]] == [t["task"] for t in recorded.json()["tasks"]]
    assert replayed.json()["mission"]["status"] == "completed" and len(fake.chat_requests) == asked


def test_a_call_that_failed_when_recorded_fails_the_same_way_on_replay(cli, fake, isolated, tmp_path):
    """With analysis: model, the memory's own calls can fail (a server that refuses them) and CrewAI goes on without
    them; the recording holds the failures, so the replay goes on the same way instead of missing."""
    from pathlib import Path

    Path("config").mkdir()
    Path("config/memory.yaml").write_text("analysis: model\n")
    fake.add(contains="You extract discrete, reusable memory statements", status=400, text="response_format is not supported")
    tape = tmp_path / "research.jsonl"
    args = ["run", "research", "-i", "topic=honey bees", "--model", "openai/gpt-4.1-mini"]
    recorded = cli(*args, "--base-url", fake.url, "--record", str(tape), "--json", "--quiet")
    assert recorded.code == 0, recorded.err
    failures = [json.loads(line) for line in tape.read_text().splitlines() if '"error":' in line]
    assert any("response_format is not supported" in f["error"] for f in failures)  # and answers that did not fit
    asked = len(fake.chat_requests)
    replayed = cli(*args, "--base-url", UNREACHABLE, "--replay", str(tape), "--json", "--quiet")
    assert replayed.code == 0, replayed.err
    assert replayed.json()["output"] == recorded.json()["output"] and len(fake.chat_requests) == asked
