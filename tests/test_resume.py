"""Real processes: killed, interrupted, detached, cancelled and run side by side; then resumed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import REPO, start_mamabear, store_for, subprocess_env, wait_for

DEV_INPUTS = ["-i", "goal=a honey tracker"]
DEV_TASKS = [
    "Break the goal",
    "Find existing solutions",
    "Choose the tools",
    "Decide which language model",
    "Write the commands",
    "Review the plan",
    "Design and write the integration code",
]


def asked(fake, marker: str) -> list[dict]:
    return [r for r in fake.chat_requests if marker in r["task"]]


def checkpoint_files(home: Path, run_id: str) -> list[Path]:
    return sorted((home / "checkpoints" / run_id).glob("*/*.json"))


def start_development_and_hang_in_task_4(fake, home: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    fake.add(task=DEV_TASKS[3], delay=60, times=1)
    proc = start_mamabear(home, "run", "development", *DEV_INPUTS, "--base-url", fake.url, "--quiet", *flags)
    wait_for(lambda: asked(fake, DEV_TASKS[3]), what="the fourth task's model call")
    run_id = store_for(home).list_runs(limit=1)[0].id
    return proc, run_id


def test_sigkill_in_the_fourth_of_seven_tasks_then_resume_runs_only_the_rest(cli, fake, isolated):
    proc, run_id = start_development_and_hang_in_task_4(fake, isolated)
    proc.kill()
    proc.wait(timeout=30)
    before = len(fake.chat_requests)
    assert before == 4

    listed = cli("runs", "list", "--json").json()
    assert listed[0]["id"] == run_id and listed[0]["status"] == "interrupted"  # the dead process is noticed

    resumed = cli("resume", run_id[:13], "--json", "--quiet")  # a unique prefix will do
    assert resumed.code == 0, resumed.err
    doc = resumed.json()
    new = fake.chat_requests[before:]
    for marker in DEV_TASKS[:3]:
        assert not [r for r in new if marker in r["task"]], f"completed task '{marker}' was run again"
    assert [r["task"].split(": ", 1)[1][:12] for r in new] == [m[:12] for m in DEV_TASKS[3:]]

    # One id, both attempts, every task and every call; the same shape as an uninterrupted run.
    assert doc["run_id"] == run_id and doc["status"] == "completed"
    assert [(a["number"], a["kind"], a["status"]) for a in doc["attempts"]] == [(1, "run", "interrupted"), (2, "resume", "completed")]
    assert doc["attempts"][1]["checkpoint"] and [t["status"] for t in doc["tasks"]] == ["completed"] * 7
    calls = store_for(isolated).llm_calls(run_id)
    assert len(calls) == 8 and [c["attempt"] for c in calls] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert calls[3]["outcome"] == "error" and "ended during the call" in calls[3]["error"]
    assert doc["output"] == doc["tasks"][-1]["output"] and doc["output"].startswith("Result for: Current Task: Design")

    fresh = cli("run", "development", *DEV_INPUTS, "--base-url", fake.url, "--json", "--quiet").json()
    assert set(fresh) == set(doc) and [set(t) for t in fresh["tasks"]] == [set(t) for t in doc["tasks"]]


def test_sigint_checkpoints_marks_interrupted_and_exits_130(cli, fake, isolated):
    proc, run_id = start_development_and_hang_in_task_4(fake, isolated)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"mamabear resume {run_id}" in err, err
    run = store_for(isolated).run(run_id)
    assert run.status == "interrupted" and "SIGINT" in (run.error or ""), (run.status, run.error, err)
    files = checkpoint_files(isolated, run_id)
    assert len(files) == 3 and all(json.loads(f.read_text()) for f in files), files  # one per completed task
    nodes = json.loads(files[-1].read_text())["event_record"]["nodes"].values()
    assert nodes and all("task_started" != n["event"]["type"] or n["event"]["task_id"] for n in nodes)
    assert not any("agent" in n["event"] or "messages" in n["event"] for n in nodes)  # skeletons, not payloads

    before = len(fake.chat_requests)
    assert cli("resume", run_id, "--quiet").code == 0
    assert [r["task"][14:26] for r in fake.chat_requests[before:]] == [m[:12] for m in DEV_TASKS[3:]]
    assert checkpoint_files(isolated, run_id) == []  # a completed run needs none


def test_a_second_ctrl_c_exits_at_once_and_the_checkpoint_survives(fake, isolated):
    proc, run_id = start_development_and_hang_in_task_4(fake, isolated)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    files = checkpoint_files(isolated, run_id)
    assert len(files) == 3 and all(json.loads(f.read_text()) for f in files)
    assert not list((isolated / "checkpoints" / run_id).glob("*/.writing-*"))


def test_detach_prints_the_id_and_logs_follow_it_live(cli, fake, isolated):
    fake.add(task="Check every claim", delay=1.0)
    started = cli("run", "research", "-i", "topic=owls", "--base-url", fake.url, "--detach", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["run_id"]
    assert store_for(isolated).run(run_id).status == "running"  # it is there the moment the id is printed
    followed = cli("runs", "logs", run_id, "--follow")
    assert followed.code == 0
    lines = followed.out.strip().splitlines()
    assert "started" in lines[0] and lines[-1].split(" (")[0].endswith(f"run {run_id} completed")
    assert sum("task_completed" in line or "completed in" in line for line in lines) == 3


def test_runs_cancel_stops_a_detached_run_cleanly_and_it_resumes(cli, fake, isolated):
    fake.add(task="Check every claim", delay=60, times=1)
    run_id = cli("run", "research", "-i", "topic=owls", "--base-url", fake.url, "--detach").out.strip()
    wait_for(lambda: asked(fake, "Check every claim"), what="the second task's call")
    cancelled = cli("runs", "cancel", run_id, "--json")
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled"
    assert store_for(isolated).run(run_id).error == "was cancelled"
    assert len(checkpoint_files(isolated, run_id)) == 1
    assert cli("runs", "cancel", run_id).code == 2  # not running any more

    before = len(fake.chat_requests)
    assert cli("resume", run_id, "--quiet").code == 0
    assert not asked(fake, "Current Task: Research")[1:] and len(fake.chat_requests) == before + 2


def test_two_runs_at_once_share_one_store_without_harm(fake, isolated):
    fake.add(delay=0.3)
    procs = [start_mamabear(isolated, "run", "development", "-i", f"goal=tracker {n}", "--base-url", fake.url, "--json", "--quiet") for n in (1, 2)]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        docs.append(json.loads(out))
    assert {d["status"] for d in docs} == {"completed"} and docs[0]["run_id"] != docs[1]["run_id"]
    store = store_for(isolated)
    for n, doc in enumerate(docs, start=1):
        served = [r for r in fake.chat_requests if f"tracker {n}" in r["text"]]
        assert len(store.llm_calls(doc["run_id"])) == len(served) == 7
    with sqlite3.connect(isolated / "mamabear.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


ABANDON = """
import sys
from mamabear.engine.plan import make_plan
from mamabear.engine.attempt import Attempt
from mamabear.engine.services import Services

ws = Services(base_url=sys.argv[1])
plan = make_plan(ws.catalog, ws.models, "research", {"topic": "otters"}, ws.settings)

def broken_renderer(result):
    raise RuntimeError("the terminal went away")

Attempt(ws, plan, [], on_abandon=broken_renderer).run()
"""


def test_ctrl_c_exits_even_when_rendering_the_abandoned_run_fails(fake, isolated):
    fake.add(task="Research", delay=60, times=1)  # a model call in flight that Ctrl-C cannot unwind
    proc = subprocess.Popen(
        [sys.executable, "-c", ABANDON, fake.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(MAMABEAR_HOME=str(isolated)),
        cwd=REPO,
    )
    wait_for(lambda: asked(fake, "Research"), what="the first model call")
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)  # on 4d96280 it waited for ever
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert store_for(isolated).list_runs(limit=1)[0].status == "interrupted"


def test_a_run_killed_during_its_start_up_is_noticed_and_resumes(cli, fake, isolated):
    proc = start_mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    run = wait_for(lambda: (isolated / "mamabear.db").exists() and next(iter(store_for(isolated).list_runs(limit=1)), None), what="the run's row")
    proc.kill()  # while CrewAI is still being imported: its attempt is not recorded yet
    proc.wait(timeout=30)
    assert store_for(isolated).attempts(run.id) == [] and fake.chat_requests == []
    listed = cli("runs", "list", "--json").json()[0]
    assert listed["status"] == "interrupted"  # on 4d96280 it stayed running for ever, with no host
    resumed = cli("resume", run.id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    assert resumed.json()["status"] == "completed" and len(fake.chat_requests) == 3


def test_a_checkpoint_behind_the_store_or_an_empty_newest_one_repeats_no_completed_task(cli, fake, isolated):
    proc, run_id = start_development_and_hang_in_task_4(fake, isolated)
    wait_for(lambda: len(checkpoint_files(isolated, run_id)) == 3, what="three checkpoints")
    proc.kill()
    proc.wait(timeout=30)
    files = sorted(checkpoint_files(isolated, run_id), key=lambda p: p.stat().st_mtime_ns)
    files[-1].unlink()  # as if killed between task 3's row and its checkpoint: the newest checkpoint has tasks 1-2
    (files[-1].parent / "zz-newest.json").write_text("{}")  # and a newer one that parses but holds nothing
    before = len(fake.chat_requests)
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    new = fake.chat_requests[before:]
    for marker in DEV_TASKS[:3]:  # on 4d96280 the '{}' failed the resume, and without it task 3 ran again
        assert not [r for r in new if marker in r["task"]], f"completed task '{marker}' was run again"
    assert resumed.json()["status"] == "completed" and [t["status"] for t in resumed.json()["tasks"]] == ["completed"] * 7


def test_a_checkpoint_that_cannot_be_written_is_said(cli, fake, isolated):
    isolated.mkdir(parents=True, exist_ok=True)
    (isolated / "checkpoints").write_text("a file where the checkpoints folder should be")  # as a full or broken disk would
    done = subprocess.run(
        [sys.executable, "-m", "mamabear", "run", "research", "-i", "topic=otters", "--base-url", fake.url],
        capture_output=True,
        text=True,
        env=subprocess_env(MAMABEAR_HOME=str(isolated)),
        cwd=REPO,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr  # the run goes on...
    warned = [line for line in done.stderr.splitlines() if "the checkpoint could not be written" in line]
    assert warned and "a resume would repeat" in warned[0]  # ...and says so (silent on 4d96280)


def test_with_no_readable_checkpoint_a_resume_takes_completed_outputs_from_the_store(cli, fake, isolated):
    proc, run_id = start_development_and_hang_in_task_4(fake, isolated, "--no-cache")  # the cache would hide a repeat
    wait_for(lambda: len(checkpoint_files(isolated, run_id)) == 3, what="three checkpoints")
    proc.kill()
    proc.wait(timeout=30)
    for path in checkpoint_files(isolated, run_id):
        path.write_text('{"entities": [')  # every checkpoint torn, as a damaged disk would leave them
    from mamabear.store.database import checkpoints

    store = store_for(isolated)
    assert len(store.checkpoint_bodies(run_id)) == 3
    with store.tx() as conn:  # and their copies in the run store too
        conn.execute(checkpoints.update().where(checkpoints.c.run_id == run_id).values(body='{"entities": ['))
    before = len(fake.chat_requests)
    resumed = cli("resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    new = fake.chat_requests[before:]
    for marker in DEV_TASKS[:3]:  # on 4d96280 the resume started over and ran all seven tasks again
        assert not [r for r in new if marker in r["task"]], f"completed task '{marker}' was run again"
    assert [marker for marker in DEV_TASKS[3:] if asked(fake, marker)] == DEV_TASKS[3:]
    third = store_for(isolated).tasks(run_id)[2].output
    assert third and all(third in r["text"] for r in asked(fake, DEV_TASKS[3])[-1:])  # the stored outputs are its context
    logs = cli("runs", "logs", run_id).out
    assert "no readable checkpoint" in logs
    assert resumed.json()["status"] == "completed" and [t["status"] for t in resumed.json()["tasks"]] == ["completed"] * 7


def test_a_detached_run_is_given_every_option_it_was_given_here(cli, fake, isolated, tmp_path):
    (tmp_path / "inputs.yaml").write_text("topic: owls\n")
    args = ("run", "research", "--inputs", str(tmp_path / "inputs.yaml"), "--base-url", fake.url, "--no-cache", "--budget-tokens", "50")
    started = cli(*args, "--max-duration", "5m", "--detach", "--json")
    assert started.code == 0, started.err
    run_id = started.json()["run_id"]
    followed = cli("runs", "logs", run_id, "--follow")
    assert "token budget" in followed.out  # its budget stopped it, in the background too
    run = store_for(isolated).run(run_id)
    assert run.status == "budget_exhausted"
    assert run.inputs["topic"] == "owls" and run.options["no_cache"] is True  # --inputs FILE, read here
    assert run.options["budget_tokens"] == 50 and run.options["max_duration_s"] == 300
    assert len(fake.chat_requests) == 1


def test_a_run_whose_pid_another_process_took_is_settled_as_interrupted(cli, isolated):
    """After a reboot (or a long time), a dead run's pid may belong to a new process: that process started after the
    run last beat, so it is not the run's."""
    import subprocess
    import time

    from mamabear.store.liveness import this_host

    store = store_for(isolated)
    store.create_run("reused", "research", "sequential", {}, {}, [])
    store.start_attempt("reused", "run", pid=1, host=this_host(), options={}, checkpoint=None)  # its beat: now
    time.sleep(4)  # past the slack, and the second a process's start time may be off by (its boot time is in seconds)
    other = subprocess.Popen(["sleep", "30"])  # a process born after the run's last beat
    try:
        store.update_run("reused", pid=other.pid)
        listed = {r["id"]: r["status"] for r in cli("runs", "list", "--json").json()}
        assert listed["reused"] == "interrupted"
        store.create_run("alive", "research", "sequential", {}, {}, [])
        store.start_attempt("alive", "run", pid=other.pid, host=this_host(), options={}, checkpoint=None)  # a process that beats
        assert {r["id"]: r["status"] for r in cli("runs", "list", "--json").json()}["alive"] == "running"
    finally:
        other.kill()
        other.wait()
