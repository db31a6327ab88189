"""A run on another machine that shares the store (PostgreSQL, or one SQLite file on a shared disk): its process beats
in the store while it runs, so one that died is told from one still working, and can be resumed elsewhere.

The run here is a real process on this machine, SIGKILLed; its row then names another host ("worker-b"), which is
what a run started on another machine looks like from here."""

from __future__ import annotations

import shutil
import time

from conftest import resumed_without_repeats, start_mamabear, wait_for


def _store():  # noqa: ANN202
    from mamabear.engine.services import Services

    return Services().store


def test_a_run_on_another_machine_beats_while_it_runs_and_is_resumed_here_once_its_heartbeat_stops(cli, fake, isolated, monkeypatch):
    monkeypatch.setenv("MAMABEAR_HEARTBEAT_STALE_S", "6")
    fake.add(task="Check every claim", delay=60, times=1)  # the second task's first call hangs
    proc = start_mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    try:
        wait_for(lambda: any("Check every claim" in r["task"] for r in fake.chat_requests) or proc.poll() is not None, what="the hanging call")
        assert proc.poll() is None, proc.communicate()[1]
        store = _store()
        run_id = store.list_runs()[0].id
        store.update_run(run_id, host="worker-b")
        first = store.run(run_id).heartbeat_at
        wait_for(lambda: store.run(run_id).heartbeat_at > first, timeout=10, what="a new heartbeat while a model call hangs")
        listed = cli("runs", "list", "--json").json()[0]
        assert listed["status"] == "running"  # beating: still running over there
        refused = cli("resume", run_id)
        assert refused.code == 2 and f"run {run_id} is running on worker-b (its last heartbeat was" in refused.err
    finally:
        proc.kill()
        proc.wait(timeout=30)
    killed = time.time()
    settled = wait_for(lambda: (row := cli("runs", "list", "--json").json()[0])["status"] != "running" and row, timeout=30, what="the run settled")
    elapsed = time.time() - killed
    assert 6 - 2.5 <= elapsed <= 6 + 10 and settled["status"] == "interrupted"  # not before the stale time (less a beat), nor long after
    assert "its machine worker-b stopped beating" in settled["error"]
    lost = cli("runs", "show", run_id, "--json").json()["attempts"][0]
    assert lost["finished_at"] <= killed  # it ended at its last heartbeat, not when it was noticed: `stats` MTTR counts from there
    checkpoints = isolated / "checkpoints" / run_id
    assert any(checkpoints.glob("*/*.json"))
    shutil.rmtree(checkpoints)  # they were files on worker-b: this machine has none
    doc = resumed_without_repeats(cli, fake, "Research", 1)
    assert doc["status"] == "completed" and [t["status"] for t in doc["tasks"]] == ["completed"] * 3
    resumed = [e["message"] for e in cli("runs", "logs", run_id, "--json").json() if e["kind"] == "run_resumed"]
    assert len(resumed) == 1 and "from its last checkpoint" in resumed[0]  # the copy in the run store
    assert _store().checkpoint_bodies(run_id) == [] and not checkpoints.exists()  # a completed run keeps none


def test_a_run_is_claimed_only_as_it_was_seen_and_a_lost_attempt_cannot_clobber_its_successor(tmp_path):
    """What two workers (or a worker and `runs cancel`) do to one run between reading it and starting it."""
    import pytest

    from mamabear.errors import UsageError
    from mamabear.status import Status
    from mamabear.store.database import Store

    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.create_run("r1", "note", "sequential", {}, {}, [{"position": 1, "task": "note", "agent": "a"}], {"queue": "default"}, status=Status.QUEUED)
    assert store.cancel_queued("r1")  # cancelled while a worker's process was importing CrewAI
    with pytest.raises(UsageError, match="run r1 is cancelled now \\(it was queued\\); it is not started"):
        store.start_attempt("r1", "run", pid=101, host="w1", options={}, checkpoint=None, expected=Status.QUEUED)

    store.create_run("r2", "note", "sequential", {}, {}, [{"position": 1, "task": "note", "agent": "a"}], {"queue": "default"}, status=Status.QUEUED)
    first = store.start_attempt("r2", "run", pid=101, host="w1", options={}, checkpoint=None, expected=Status.QUEUED)
    with pytest.raises(UsageError, match="already running on w1 \\(pid 101\\)"):  # the same message, taken twice
        store.start_attempt("r2", "run", pid=202, host="w2", options={}, checkpoint=None, expected=Status.QUEUED)
    assert store.beat("r2", first)
    store.finish_attempt("r2", first, Status.INTERRUPTED, "its machine w1 stopped beating")  # taken as lost by a sweeper
    assert store.requeue("r2") and not store.requeue("r2")  # one sweeper of several sends it
    second = store.start_attempt("r2", "resume", pid=202, host="w2", options={}, checkpoint=None, expected=Status.QUEUED)
    assert not store.beat("r2", first)  # the first attempt (alive after all) learns it lost the run, and stops
    store.finish_attempt("r2", first, Status.INTERRUPTED, "lost the run")
    run = store.run("r2")
    assert (run.status, run.attempt, run.pid) == (Status.RUNNING, second, 202)  # its successor's run is untouched
    assert store.beat("r2", second)


def test_a_newer_checkpoint_from_another_machine_is_restored_before_this_machine_s_older_one(tmp_path):
    import json

    from mamabear.config.redact import Redactor
    from mamabear.engine.checkpoints import Checkpoints
    from mamabear.store.database import Store

    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.create_run("r1", "note", "sequential", {}, {}, [])
    state = json.dumps({"entities": [{"type": "crew"}]})
    here = Checkpoints(tmp_path / "home-a", "r1", Redactor({}), store=store)
    (here.dir / "main").mkdir(parents=True)
    (here.dir / "main" / "1.json").write_text(state)  # this machine's, after task 1
    store.save_checkpoint("r1", "main/1.json", state, keep=5)
    store.save_checkpoint("r1", "main/2.json", state.replace("crew", "crew2"), keep=5)  # another machine's, after task 2
    assert here.latest() == here.dir / "main" / "2.json" and "crew2" in (here.dir / "main" / "2.json").read_text()
    store.save_checkpoint("r1", "main/3.json", "{torn", keep=5)
    elsewhere = Checkpoints(tmp_path / "home-b", "r1", Redactor({}), store=store)  # no files: the store's newest usable one
    assert elsewhere.latest() == elsewhere.dir / "main" / "2.json"
    for n in range(4, 9):
        store.save_checkpoint("r1", f"main/{n}.json", state, keep=5)
    assert [name for name, _ in store.checkpoint_bodies("r1")] == [f"main/{n}.json" for n in range(8, 3, -1)]  # the newest 5
