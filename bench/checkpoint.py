"""Checkpoint overhead per task and resume start-up, on the 7-task development crew.

1. Checkpoint writes: CrewAI times each write (serialise + our atomic, redacted JSON
   provider) and reports it on CheckpointCompletedEvent; printed per checkpoint, with the
   file size. Goal: under 50 ms per checkpoint.
2. Resume start-up: a run is stopped after 3 of 7 tasks (token budget), then resumed in a
   subprocess; printed is the time from `mamabear resume` starting to its first model
   request, next to the same figure for a fresh `mamabear run`, and the in-process time
   to restore the crew from its checkpoint and re-arm its LLMs. Goal: ready in under 2 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from offline import CREW, INPUTS, REPO, FakeLLM

os.environ["MAMABEAR_NO_CACHE"] = "1"  # every round asks the model the same: the response cache would answer it all

ROUNDS = 3


def checkpoint_writes(url: str) -> tuple[list[float], list[int], str]:
    from crewai.events import crewai_event_bus
    from crewai.events.types.checkpoint_events import CheckpointCompletedEvent

    from mamabear.engine.attempt import Attempt
    from mamabear.engine.plan import make_plan
    from mamabear.engine.services import Services

    durations: list[float] = []
    sizes: list[int] = []

    def seen(_source: object, event: CheckpointCompletedEvent) -> None:
        durations.append(event.duration_ms)
        sizes.append(Path(event.location).stat().st_size)

    crewai_event_bus.on(CheckpointCompletedEvent)(seen)
    ws = Services(base_url=url)
    plan = make_plan(ws.catalog, ws.models, CREW, INPUTS, ws.settings)
    result = Attempt(ws, plan, []).run()
    crewai_event_bus.flush()
    crewai_event_bus.off(CheckpointCompletedEvent, seen)
    return durations, sizes, result.run_id


def first_request_after(fake: FakeLLM, args: list[str]) -> float:
    """Seconds from starting `mamabear ARGS` to the first model request it makes."""
    before = len(fake.chat_requests)
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mamabear", *args, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=REPO
    )
    _, err = proc.communicate(timeout=300)
    if len(fake.chat_requests) == before:
        raise SystemExit(f"no model request from {args}: {err}")
    return fake.chat_requests[before]["time"] - start


def restore_in_process(run_id: str) -> float:
    from mamabear.config.redact import Redactor
    from mamabear.engine.build import AgentParts
    from mamabear.engine.checkpoints import Checkpoints
    from mamabear.engine.resume import prepare_resume

    ws, plan, _limits, run_id = prepare_resume(run_id)
    checkpoints = Checkpoints(ws.settings.home, run_id, Redactor(ws.settings.env))
    from mamabear.compat.httpx import shared_tls

    start = time.perf_counter()
    with shared_tls():
        AgentParts(plan, ws.settings, ws.models, control=None).reattach(checkpoints.restore(checkpoints.latest()), ws.catalog)
    return time.perf_counter() - start


def main() -> None:
    with FakeLLM() as fake:
        durations, sizes, _ = checkpoint_writes(fake.url)  # warm-up run: imports, schemas
        durations, sizes, _ = checkpoint_writes(fake.url)
        print(f"checkpoint writes, {CREW} crew ({len(durations)} tasks):")
        for n, (ms, size) in enumerate(zip(durations, sizes, strict=True), start=1):
            print(f"  after task {n}: {ms:6.1f} ms  {size / 1024:7.1f} KiB")
        print(f"  mean {statistics.mean(durations):.1f} ms, max {max(durations):.1f} ms per checkpoint (goal < 50 ms)")

        fresh, resumed, restored = [], [], []
        for _ in range(ROUNDS):
            fresh.append(first_request_after(fake, ["run", CREW, "-i", f"goal={INPUTS['goal']}", "--base-url", fake.url]))
            budget = sum(r["usage"]["total_tokens"] for r in fake.chat_requests[-7:][:3])  # what tasks 1-3 spend
            fake.reset()
            stopped = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mamabear",
                    "run",
                    CREW,
                    "-i",
                    f"goal={INPUTS['goal']}",
                    "--base-url",
                    fake.url,
                    "--budget-tokens",
                    str(budget),
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                env=os.environ.copy(),
                cwd=REPO,
                timeout=300,
            )
            if stopped.returncode != 3:
                raise SystemExit(f"expected a budget stop, got {stopped.returncode}: {stopped.stderr}")
            from mamabear.engine.services import Services

            run_id = Services().store.list_runs(limit=1)[0].id
            restored.append(restore_in_process(run_id))
            resumed.append(first_request_after(fake, ["resume", run_id, "--budget-tokens", "100000000"]))
            fake.reset()
        print(f"start-up to the first model request (median of {ROUNDS}):")
        print(f"  mamabear run:    {statistics.median(fresh):.2f} s")
        print(f"  mamabear resume: {statistics.median(resumed):.2f} s  (goal < 2 s)")
        print(f"  of which restoring the crew from its checkpoint and re-arming its LLMs: {statistics.median(restored):.2f} s")


if __name__ == "__main__":
    main()
