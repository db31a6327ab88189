"""A stop holds whatever the run is blocked on: a tool past the time limit, a signal on another thread, a full disk."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, subprocess_env
from mamabear.store import Store

FRAME = "Turn the question"  # data_analysis's first task: its agent has the sandbox's tools


def store_for(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mamabear", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=subprocess_env(MAMABEAR_HOME=str(home)), cwd=REPO)


def wait_for(condition, timeout: float = 90.0, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_tool_blocked_past_the_time_limit_does_not_hold_the_run(fake, isolated, tmp_path):
    marker = tmp_path / "child.pid"
    fake.add(task=FRAME, times=1, tool_calls=[{"name": "bash", "arguments": {
        "command": f"echo $$ > {marker}; sleep 120", "timeout_s": 600}}])
    proc = start(isolated, "run", "data_analysis", "-i", "question=how many bears", "--base-url", fake.url,
                 "--max-duration", "5s", "--quiet", "--json")
    wait_for(lambda: fake.chat_requests, what="the first model call")
    clock_started = fake.chat_requests[0]["time"]  # the time limit counts from just before the first call
    try:
        proc.wait(timeout=60)  # 4d96280: the run waited for the tool's 120 s, then for the rest of the crew
    finally:
        proc.kill()
    overshoot = time.time() - clock_started - 5
    assert proc.returncode == 4, proc.stderr.read()
    assert overshoot < 2 + 10, f"the run ended {overshoot:.1f} s after its time limit"
    child = int(marker.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]  # nothing left behind
    run = store_for(isolated).list_runs(limit=1)[0]
    assert run["status"] == "time_limit" and "time limit of 5" in run["error"]


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
    proc = start(isolated, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet")
    wait_for(lambda: [r for r in fake.chat_requests if "extract discrete" in r["text"]], what="the memory's save call")
    time.sleep(1.0)  # the main thread reaches the recall and waits
    _signal_thread(proc.pid, _threads_other_than_main(proc.pid)[-1], signal.SIGTERM)
    sent = time.monotonic()
    try:
        proc.wait(timeout=60)  # 4d96280: still waiting after the 120 s save, then ran on (SIGTERM ignored)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    assert proc.returncode == 130, proc.stderr.read()
    assert took < 2 + 10, f"the run stopped {took:.1f} s after the signal"
    run = store_for(isolated).list_runs(limit=1)[0]
    assert run["status"] == "interrupted"


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _user_namespaces(), reason="needs unshare -rm (user and mount namespaces) for a small disk")
def test_a_full_disk_stops_the_run_with_one_sentence_and_keeps_what_is_stored(fake, isolated, tmp_path):
    """MAMABEAR_HOME on a 64 MiB tmpfs (in a mount namespace of its own) that fills up during task 2."""
    go, out = tmp_path / "go", tmp_path / "out"
    home = tmp_path / "small-home"
    home.mkdir()
    fake.add(task="Check every claim", delay=2.0)  # research's task 2: the disk fills while it thinks
    python = sys.executable
    script = f"""
mount -t tmpfs -o size=64m tmpfs {home} || exit 99
{python} -m mamabear run research -i topic=otters --base-url {fake.url} --no-cache > {out}.run 2> {out}.err &
pid=$!
while [ ! -e {go} ]; do sleep 0.05; done
dd if=/dev/zero of={home}/filler bs=1M count=100 2>/dev/null
wait $pid; echo $? > {out}.code
rm {home}/filler
{python} -m mamabear runs list --json > {out}.list 2>> {out}.err
"""
    proc = subprocess.Popen(["unshare", "-rm", "sh", "-c", script], env=subprocess_env(MAMABEAR_HOME=str(home)), cwd=REPO)
    wait_for(lambda: [r for r in fake.chat_requests if "Check every claim" in r["task"]], what="task 2's call")
    go.touch()
    assert proc.wait(timeout=120) == 0
    err = Path(f"{out}.err").read_text()
    assert Path(f"{out}.code").read_text().strip() == "2", err
    assert "Traceback" not in err  # 4d96280: a 40-line traceback
    final = [line for line in err.splitlines() if line.startswith("error:")]
    assert final and "disk is full" in final[0] and "mamabear.db" in final[0], err
    import json

    runs = json.loads(Path(f"{out}.list").read_text())
    assert len(runs) == 1 and runs[0]["status"] in ("failed", "interrupted")  # recorded, or noticed once space was back
