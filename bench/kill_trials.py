"""SIGKILL trials: kill `mamabear run` at random moments, resume it, count the paid work repeated.

Each trial starts the 7-task development crew (memory on, the response cache off: a cache
would answer a repeated call for free and hide it) against the scripted model server,
SIGKILLs it at a moment drawn uniformly from zero to the length of an uninterrupted run
(so start-up, every task and the gap between a task's row and its checkpoint are all
hit), then runs `mamabear resume` once. Counted against the model server's own request
log:

- completed tasks repeated: a task the store had as completed at the kill that made any
  model request after it (the promise: zero);
- calls repeated of the task in flight (allowed: a task in flight starts over);
- runs left `running`, and resumes that did not complete the run.

    python bench/kill_trials.py [TRIALS=40] [SEED]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from offline import REPO, FakeLLM

os.environ.pop("MAMABEAR_NO_MEMORY", None)  # users run with memory on: kill it too
TASKS = [
    "Break the goal",
    "Find existing solutions",
    "Choose the tools",
    "Decide which language model",
    "Write the commands",
    "Review the plan",
    "Design and write the integration code",
]
ARGS = ["development", "-i", "goal=a honey tracker", "--no-cache", "--quiet"]
CALL_DELAY_S = 0.25  # each model answer takes this long: tasks last long enough to be killed in


def mamabear(home: Path, *args: str) -> subprocess.Popen:
    env = os.environ | {"MAMABEAR_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "mamabear", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def store(home: Path):  # noqa: ANN201
    from mamabear.store.database import Store

    return Store.open(f"sqlite:///{home / 'mamabear.db'}")


def task_of(request: dict) -> int | None:
    return next((i for i, marker in enumerate(TASKS, start=1) if marker in request["task"]), None)


def nothing_to_resume(moment: str) -> dict:
    return {"moment": moment, "repeated": 0, "inflight": 0, "stuck": 0, "unfinished": 0}


def trial(fake: FakeLLM, home: Path, url: str, kill_after: float) -> dict:
    first = len(fake.chat_requests)
    proc = mamabear(home, "run", *ARGS, "--base-url", url)
    time.sleep(kill_after)
    proc.kill()
    proc.communicate(timeout=60)
    killed_at = len(fake.chat_requests)
    if not (home / "mamabear.db").exists():
        return nothing_to_resume("before the run's row")
    db = store(home)
    runs = db.list_runs(limit=1)
    if not runs:
        return nothing_to_resume("before the run's row")
    run_id = runs[0].id
    done = {t.position for t in db.tasks(run_id) if t.status == "completed"}
    asked_before = Counter(task_of(r) for r in fake.chat_requests[first:killed_at])
    moment = "start-up" if not asked_before else f"task {len(done) + 1}" if len(done) < len(TASKS) else "after the last task"
    if runs[0].status == "completed":  # killed as it exited
        return nothing_to_resume("after the last task")
    resume = mamabear(home, "resume", run_id, "--base-url", url, "--json")
    _, err = resume.communicate(timeout=600)
    after = Counter(task_of(r) for r in fake.chat_requests[killed_at:])
    final = db.run(run_id)
    return {
        "moment": moment,
        "repeated": sum(1 for p in done if after[p]),
        "inflight": sum(min(asked_before[p], after[p]) for p in set(range(1, len(TASKS) + 1)) - done),
        "stuck": int(final.status == "running"),
        "unfinished": int(resume.returncode != 0 or final.status != "completed"),
        "error": err.strip().splitlines()[-1] if resume.returncode != 0 and err.strip() else "",
    }


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 13)
    root = Path(os.environ["MAMABEAR_HOME"])
    with FakeLLM() as fake:
        fake.add(delay=CALL_DELAY_S)
        started = time.monotonic()
        whole = mamabear(root / "whole", "run", *ARGS, "--base-url", fake.url)
        whole.communicate(timeout=600)
        length = time.monotonic() - started
        calls = len(fake.chat_requests)
        print(f"an uninterrupted run: {length:.1f} s, {calls} model calls; {trials} trials killed uniformly in 0-{length:.1f} s")
        results = []
        for n in range(trials):
            kill_after = rng.uniform(0, length)
            result = trial(fake, root / f"trial-{n}", fake.url, kill_after)
            results.append(result)
            print(
                f"  trial {n + 1:2d}: killed at {kill_after:5.1f} s ({result['moment']}): "
                f"{result['repeated']} completed tasks repeated, {result['inflight']} in-flight calls repeated"
                + (f"; NOT COMPLETED: {result.get('error')}" if result["unfinished"] else ""),
                flush=True,
            )
    moments = Counter("task" if r["moment"].startswith("task ") else r["moment"] for r in results)
    print(f"\nkills by moment: {dict(moments)}")
    print(f"completed tasks repeated:  {sum(r['repeated'] for r in results)} (in {sum(bool(r['repeated']) for r in results)} of {trials} trials)")
    print(f"in-flight calls repeated:  {sum(r['inflight'] for r in results)} (mean {statistics.mean(r['inflight'] for r in results):.2f} per trial)")
    print(f"runs left running:         {sum(r['stuck'] for r in results)}")
    print(f"resumes not completed:     {sum(r['unfinished'] for r in results)}")


if __name__ == "__main__":
    main()
