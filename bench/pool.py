"""The worker pool against an instant scripted model (tests/fakellm.py), on a Redis server started here.

1. Queue latency: from `run --queue` returning to the run's first model request, on an idle worker, against the
   same run started by `mamabear run` (its process start to its first request): what queueing adds.
2. Throughput: N one-task runs done by 1 worker and by 2 workers (one run at a time each), against the same N runs
   started one after another by `mamabear run` on this machine; runs per minute and the ratios.
3. MTTR: a worker holding a run whose model call hangs is lost; the time from the loss to the run's next model
   request, on the other worker (the run running again), with the default heartbeat stale time (20 s):
   - a machine lost: the worker and the run's process SIGKILLed, the run's row saying it ran on another machine,
     so the loss can be seen only by its heartbeat stopping, as from another machine;
   - a worker process lost (SIGKILL): its run stops with it, checkpointed, and is queued again at once.

Usage: python bench/pool.py [N]   (default 10 runs; this machine has 2 cores, so 2 workers share them)
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline import REPO, FakeLLM

sys.path.insert(0, str(REPO / "tests"))
from redisserver import RedisServer  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10
AGENTS = "noter:\n  role: Noter\n  goal: Note facts about {topic}\n  backstory: Keeps notes.\n  tier: fast\n"
TASKS = "note:\n  description: Note one fact about {topic}.\n  expected_output: One line.\n  agent: noter\n"
CREW = "description: one note\nagents: [noter]\ntasks: [note]\ninputs: [topic]\n"


def project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="mamabear-pool-"))
    (root / "config").mkdir()
    (root / "crews").mkdir()
    (root / "config" / "agents.yaml").write_text(AGENTS)
    (root / "config" / "tasks.yaml").write_text(TASKS)
    (root / "crews" / "note.yaml").write_text(CREW)
    return root


def mamabear(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mamabear", *args], env=env, cwd=cwd, capture_output=True, text=True, check=True)


def start_worker(env: dict, cwd: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mamabear", "worker", "--name", name, "--concurrency", "1"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_up(env: dict, cwd: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-m", "mamabear", "workers", "--json"], env=env, cwd=cwd, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.count('"name"') >= count:
            return
        time.sleep(0.5)
    raise SystemExit("the workers did not come up")


def store_for(env: dict):  # noqa: ANN201
    from mamabear.store.database import Store

    return Store.open(f"sqlite:///{Path(env['MAMABEAR_HOME']) / 'mamabear.db'}")


def wait_done(store, ids: list[str]) -> None:  # noqa: ANN001
    while not all(store.run(i).status == "completed" for i in ids):
        time.sleep(0.1)


def stop(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        os.killpg(w.pid, signal.SIGTERM)
    for w in workers:
        w.wait(timeout=60)


def main() -> None:
    fake = FakeLLM().start()
    root = project()
    with RedisServer(password="bench-broker") as redis:
        env = {**os.environ, "MAMABEAR_BROKER_URL": redis.url, "MAMABEAR_NO_CACHE": "1"}
        store = store_for(env)
        flags = ["--base-url", fake.url]

        # 1. queue latency
        local, queued = [], []
        for k in range(3):
            fake.reset()
            began = time.time()
            mamabear(env, root, "run", "note", "-i", f"topic=local {k}", *flags, "--quiet")
            local.append(fake.chat_requests[0]["time"] - began)
        workers = [start_worker(env, root, "w1")]
        wait_up(env, root, 1)
        for k in range(3):
            fake.reset()
            run_id = mamabear(env, root, "run", "note", "-i", f"topic=queued {k}", *flags, "--queue").stdout.strip()
            sent = time.time()
            wait_done(store, [run_id])
            queued.append(fake.chat_requests[0]["time"] - sent)
        print("queue latency (to the first model request), median of 3:")
        print(f"  `mamabear run`, process start: {statistics.median(local):.2f} s")
        print(f"  `run --queue`, after it returns: {statistics.median(queued):.2f} s (the worker starts the run's process)")

        # 2. throughput
        began = time.time()
        for k in range(N):
            mamabear(env, root, "run", "note", "-i", f"topic=serial {k}", *flags, "--quiet")
        serial = N / (time.time() - began) * 60
        rates = {}
        for count in (1, 2):
            if count == 2:
                workers.append(start_worker(env, root, "w2"))
                wait_up(env, root, 2)
            began = time.time()
            ids = [mamabear(env, root, "run", "note", "-i", f"topic=pool{count} {k}", *flags, "--queue").stdout.strip() for k in range(N)]
            wait_done(store, ids)
            rates[count] = N / (time.time() - began) * 60
        print(f"throughput, {N} one-task runs (this machine: {os.cpu_count()} cores):")
        print(f"  one after another, `mamabear run`: {serial:.1f} runs/min")
        print(f"  1 worker: {rates[1]:.1f} runs/min ({rates[1] / serial:.2f}x)")
        print(f"  2 workers: {rates[2]:.1f} runs/min ({rates[2] / serial:.2f}x; {rates[2] / rates[1]:.2f}x of 1 worker)")

        # 3. MTTR
        for kind in ("a machine", "a worker process"):
            fake.reset()
            fake.add(task="Note one fact", delay=300, times=1)
            run_id = mamabear(env, root, "run", "note", "-i", f"topic=failover {kind}", *flags, "--queue").stdout.strip()
            while not fake.chat_requests:
                time.sleep(0.05)
            holder = store.run(run_id).worker.split("@")[0]
            victim = next(w for w, name in zip(workers, ("w1", "w2"), strict=True) if name == holder)
            if kind == "a machine":
                store.update_run(run_id, host="lost-machine")  # seen only by its heartbeat, as from another machine
            lost_at = time.time()
            os.killpg(victim.pid, signal.SIGKILL) if kind == "a machine" else victim.kill()
            if kind == "a machine":
                os.kill(store.run(run_id).pid, signal.SIGKILL)
            while len(fake.chat_requests) < 2:
                time.sleep(0.05)
            print(f"MTTR, {kind} lost: the run's next model request came {fake.chat_requests[1]['time'] - lost_at:.1f} s after the loss")
            wait_done(store, [run_id])
            victim.wait(timeout=60)
            workers[workers.index(victim)] = start_worker(env, root, holder)  # the pool is whole again
            wait_up(env, root, 2)
        stop(workers)
    fake.stop()


if __name__ == "__main__":
    main()
