"""A stop holds whatever the run is blocked on: a tool past the time limit, a signal on another thread, a remote cancel."""

from __future__ import annotations

import ctypes
import os
import signal
import time

import pytest

from conftest import host_processes, start_mamabear, store_for, wait_for
from mamabear.store.ledger import Ledger

FRAME = "Turn the question"  # data_analysis's first task: its agent has the sandbox's tools


def test_a_tool_blocked_past_the_time_limit_does_not_hold_the_run(fake, isolated, tmp_path):
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "sleep 120.25", "timeout_s": 600}}])
    proc = start_mamabear(
        isolated, "run", "data_analysis", "-i", "question=how many bears", "--base-url", fake.url, "--max-duration", "5s", "--quiet", "--json"
    )
    wait_for(lambda: fake.chat_requests, what="the first model call")
    clock_started = fake.chat_requests[0]["time"]  # the time limit counts from just before the first call
    try:
        proc.wait(timeout=60)  # 4d96280: the run waited for the tool's 120 s, then for the rest of the crew
    finally:
        proc.kill()
    overshoot = time.time() - clock_started - 5
    print(f"a tool blocked for 120 s: the run ended {overshoot:.1f} s after its 5 s limit")
    assert proc.returncode == 4, proc.stderr.read()
    assert overshoot < 2 + 10, f"the run ended {overshoot:.1f} s after its time limit"
    assert host_processes("sleep 120.25") == []  # nothing left behind
    run = store_for(isolated).list_runs(limit=1)[0]
    assert run.status == "time_limit" and "time limit of 5" in run.error


def test_a_cancel_flagged_from_another_machine_stops_a_run_blocked_in_a_tool(fake, isolated, tmp_path):
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "sleep 120", "timeout_s": 600}}])
    proc = start_mamabear(isolated, "run", "data_analysis", "-i", "question=how many bears", "--base-url", fake.url, "--quiet")
    wait_for(lambda: fake.chat_requests, what="the first model call")
    time.sleep(1.0)  # the tool is running
    run_id = store_for(isolated).list_runs(limit=1)[0].id
    store_for(isolated).request_cancel(run_id)  # as `runs cancel` on another machine does: no signal reaches the process
    flagged = time.monotonic()
    try:
        proc.wait(timeout=60)  # 4d96280: noticed only before the next model call, after the 120 s tool
    finally:
        proc.kill()
    took = time.monotonic() - flagged
    print(f"a cancel flagged in the store: the run ended {took:.1f} s later")
    assert proc.returncode == 130, proc.stderr.read()
    assert took < 2 + 2 + 10, f"the run stopped {took:.1f} s after the cancel"  # polled every 2 s, then the stop's grace
    assert store_for(isolated).run(run_id).status == "cancelled"


def _threads_other_than_main(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]


def _signal_thread(pid: int, tid: int, signum: int) -> None:
    """A process-wide signal as the kernel may deliver it: to one thread that is not the main one (tgkill)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # SYS_tgkill on x86-64
        raise OSError(ctypes.get_errno(), "tgkill failed")


@pytest.mark.memory_on
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's syscall number is x86-64's")
def test_a_signal_that_lands_on_another_thread_stops_a_run_whose_main_thread_is_blocked(fake, isolated):
    # The memory's save of task 1 hangs in its model call, so task 2's recall blocks the main thread
    # in CrewAI's drain_writes (a lock wait), as a memory store stuck on a full disk did.
    fake.add(contains="You extract discrete, reusable memory statements", delay=120)
    project = isolated.parent / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "memory.yaml").write_text("analysis: model\n")  # the memory's own model calls (CrewAI's way)
    proc = start_mamabear(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet", cwd=project)
    wait_for(lambda: [r for r in fake.chat_requests if "extract discrete" in r["text"]], what="the memory's save call")
    time.sleep(1.0)  # the main thread reaches the recall and waits
    _signal_thread(proc.pid, _threads_other_than_main(proc.pid)[-1], signal.SIGTERM)
    sent = time.monotonic()
    try:
        proc.wait(timeout=60)  # 4d96280: still waiting after the 120 s save, then ran on (SIGTERM ignored)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    print(f"SIGTERM on a thread other than the blocked main one: the run ended {took:.1f} s later")
    assert proc.returncode == 130, proc.stderr.read()
    assert took < 2 + 10, f"the run stopped {took:.1f} s after the signal"
    run = store_for(isolated).list_runs(limit=1)[0]
    assert run.status == "interrupted"


def test_no_tool_starts_once_the_run_is_out_of_budget(cli, fake, isolated, tmp_path):
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {"command": "touch ran.txt"}}])
    result = cli("run", "data_analysis", "-i", "question=how many bears", "--base-url", fake.url, "--budget-tokens", "10", "--json", "--quiet")
    assert result.code == 3, result.err  # the answer asking for the tool spent the budget
    assert not list((isolated / "sandboxes").glob("*/work/ran.txt"))  # 4d96280: the tool ran after the budget was spent
    assert not [a for a in Ledger(store_for(isolated)).actions(run_id=result.json()["run_id"]) if a["action"] == "bash"]
    assert len(fake.chat_requests) == 1


@pytest.mark.memory_on
def test_a_memory_save_stuck_in_its_model_call_does_not_hold_the_run(cli, fake, isolated, tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "config" / "memory.yaml").write_text("save_wait_s: 2\nanalysis: model\n")  # a save that asks a model
    monkeypatch.setenv("MAMABEAR_CONFIG_DIR", str(project))
    fake.add(contains="You analyze content to be stored", delay=60, times=1)  # task 1's save hangs in CrewAI's save pool
    started = time.monotonic()
    result = cli("run", "research", "-i", "topic=otters", "--base-url", fake.url, "--json")
    took = time.monotonic() - started
    assert result.code == 0, result.err
    assert took < 40, f"the run took {took:.0f} s"  # 4d96280: task 2's recall waited for the 60 s save
    assert "memory save(s) still running after 2s; going on without them" in result.err
    assert [t["status"] for t in result.json()["tasks"]] == ["completed"] * 3


def test_the_time_limit_counts_from_the_commands_start_as_the_reported_time_does():
    """The deadline is the command's start plus --max-duration, start-up included: not 10-20 s later (the agents built)."""
    from mamabear.config.limits import Limits
    from mamabear.llm.guard import Guard, RunStopped

    guard = Guard(Limits(max_duration_s=2.0))
    guard.start_clock(time.time() - 3.0)  # the command started 3 s ago (imports, the plan, the sandbox)
    with pytest.raises(RunStopped, match="reached its time limit of 2.0s"):
        guard.check()
    fresh = Guard(Limits(max_duration_s=2.0))
    fresh.start_clock(time.time())
    fresh.check()  # just started: within its limit
