"""A default run (memory on) against plain CrewAI making the same agent calls, as whole processes, side by side.

Each round starts four fresh processes against one scripted, instant model server
(tests/fakellm.py), interleaved so machine load hits all three alike:
  plain CrewAI   the same agents, tasks and prompts built with CrewAI alone (bench/crew_overhead.py's plain_crewai)
  CrewAI+memory  the same with CrewAI's own Memory (LanceDB, the same local embedder and model): the same model calls
  mamabear       `mamabear run development` as a user runs it: memory on (recall, saving, the local embedder)
  --no-memory    the same run without memory, for reference
Wall time includes interpreter start-up and imports; peak RSS is the child's own (wait4).
Targets (issue 12): mamabear with memory at most 1.3x the wall time of CrewAI making the same calls, under 400 MB
peak RSS; the ratio to CrewAI without memory is printed too.
Then `memory search` from cold, against `mamabear --version` (the CLI's own start-up) as its baseline: target < 2 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline import CREW, INPUTS, REPO, FakeLLM

ROUNDS = 3
MAMABEAR = str(Path(sys.executable).with_name("mamabear"))

PLAIN = """
import os, sys
sys.path.insert(0, {bench!r})
os.environ["MAMABEAR_HOME"] = {home!r}
from crew_overhead import plain_crewai
from mamabear.engine.plan import make_plan
from mamabear.engine.services import Services
ws = Services(base_url={url!r})
plan = make_plan(ws.catalog, ws.models, {crew!r}, {inputs!r}, ws.settings)
plain_crewai(ws.catalog, plan, {url!r}, memory={memory!r})
"""


def child(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, f"{args[:3]} failed"
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    with FakeLLM() as fake:
        home = tempfile.mkdtemp(prefix="mamabear-bench-memory-")
        env = {
            **os.environ,
            "MAMABEAR_HOME": home,
            "MAMABEAR_NO_MEMORY": "",
            "MAMABEAR_NO_CACHE": "1",
            "CREWAI_STORAGE_DIR": tempfile.mkdtemp(prefix="mamabear-bench-crewai-"),
        }  # CrewAI's LanceDB memory stays in there
        run = [MAMABEAR, "run", CREW, "-i", f"goal={INPUTS['goal']}", "--base-url", fake.url, "--quiet"]
        kinds = {
            "plain CrewAI": [sys.executable, "-c", PLAIN.format(bench=str(REPO / "bench"), home=home, url=fake.url, crew=CREW, inputs=INPUTS, memory=False)],
            "CrewAI+memory": [sys.executable, "-c", PLAIN.format(bench=str(REPO / "bench"), home=home, url=fake.url, crew=CREW, inputs=INPUTS, memory=True)],
            "mamabear": run,
            "--no-memory": [*run, "--no-memory"],
        }
        child(kinds["mamabear"], env)  # warm the page cache and the memory store once
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
        for _ in range(ROUNDS):
            for name, args in kinds.items():
                samples[name].append(child(args, env))
        print(f"7-task crew '{CREW}' as whole processes, instant local model, median of {ROUNDS} interleaved rounds")
        base_wall = statistics.median(w for w, _ in samples["plain CrewAI"])
        for name, rows in samples.items():
            wall, rss = statistics.median(w for w, _ in rows), max(r for _, r in rows)
            print(f"{name:<14}{wall:>8.2f} s wall  {wall / base_wall:>5.2f}x   peak RSS {rss:>5.0f} MB")
        ours = statistics.median(w for w, _ in samples["mamabear"])
        same_calls = statistics.median(w for w, _ in samples["CrewAI+memory"])
        peak = max(r for _, r in samples["mamabear"])
        print(
            f"memory-on run: {ours / same_calls:.2f}x CrewAI making the same calls (target <= 1.30: "
            f"{'ok' if ours / same_calls <= 1.3 else 'OVER'}), {ours / base_wall:.2f}x CrewAI without memory; "
            f"peak RSS {peak:.0f} MB (target < 400: {'ok' if peak < 400 else 'OVER'})"
        )

        version = [MAMABEAR, "--version"]
        search = [MAMABEAR, "memory", "search", "what did we decide about the weather CLI"]
        cold: dict[str, list[float]] = {"--version": [], "memory search": []}
        for _ in range(ROUNDS):
            cold["--version"].append(child(version, env)[0])
            cold["memory search"].append(child(search, env)[0])
        v, s = statistics.median(cold["--version"]), statistics.median(cold["memory search"])
        print(f"cold `memory search` {s:.2f} s against `--version` {v:.2f} s ({s / v:.1f}x; target < 2 s: {'ok' if s < 2 else 'OVER'})")


if __name__ == "__main__":
    main()
