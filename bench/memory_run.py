"""A default run (memory on) against plain CrewAI making the same agent calls, as whole processes, side by side.

Each round starts four fresh processes against one scripted, instant model server
(tests/fakellm.py), interleaved so machine load hits all three alike:
  plain CrewAI   the same agents, tasks and prompts built with CrewAI alone (bench/crew_overhead.py's plain_crewai)
  CrewAI+memory  the same with CrewAI's own Memory (LanceDB, the same local embedder and model): the same model calls
  mamabear       `mamabear run development` as a user runs it: memory on (recall, saving, the local embedder)
  analysis:model the same with memory.yaml's `analysis: model` (CrewAI's way, and mamabear's before issue 30)
  --no-memory    the same run without memory, for reference
Each row gives the model calls and input tokens the server saw (targets, issue 30: memory on at most 1.35x the calls
and 1.5x the input tokens of --no-memory, and at most 1.2x plain CrewAI's wall time).
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


def child(args: list[str], env: dict[str, str], fake: FakeLLM | None = None) -> tuple[float, float, int, int]:
    """Wall seconds, peak RSS (MB), and the model calls and input tokens the server saw, of one fresh process."""
    before = len(fake.chat_requests) if fake is not None else 0
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, f"{args[:3]} failed"
    took = time.perf_counter() - start
    made = fake.chat_requests[before:] if fake is not None else []
    return took, usage.ru_maxrss / 1024, len(made), sum((r["usage"] or {}).get("prompt_tokens", 0) for r in made)


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
            "analysis:model": run,
            "--no-memory": [*run, "--no-memory"],
        }
        model_dir = Path(tempfile.mkdtemp(prefix="mamabear-bench-analysis-"))
        (model_dir / "config").mkdir()
        (model_dir / "config" / "memory.yaml").write_text("analysis: model\n")
        envs = {name: env for name in kinds} | {"analysis:model": {**env, "MAMABEAR_CONFIG_DIR": str(model_dir)}}
        child(kinds["mamabear"], env)  # warm the page cache and the memory store once
        samples: dict[str, list[tuple[float, float, int, int]]] = {k: [] for k in kinds}
        for _ in range(ROUNDS):
            for name, args in kinds.items():
                samples[name].append(child(args, envs[name], fake))
        print(f"7-task crew '{CREW}' as whole processes, instant local model, median of {ROUNDS} interleaved rounds")
        base_wall = statistics.median(w for w, *_ in samples["plain CrewAI"])
        for name, rows in samples.items():
            wall, rss = statistics.median(w for w, *_ in rows), max(r for _, r, *_ in rows)
            calls, tokens = statistics.median(c for *_, c, _ in rows), statistics.median(t for *_, t in rows)
            print(f"{name:<15}{wall:>7.2f} s wall  {wall / base_wall:>5.2f}x   peak RSS {rss:>5.0f} MB  {calls:>4.0f} calls {tokens:>7,.0f} tokens in")
        ours = statistics.median(w for w, *_ in samples["mamabear"])
        same_calls = statistics.median(w for w, *_ in samples["CrewAI+memory"])
        peak = max(r for _, r, *_ in samples["mamabear"])
        on, off = (statistics.median(c for *_, c, _ in samples[k]) for k in ("mamabear", "--no-memory"))
        on_t, off_t = (statistics.median(t for *_, t in samples[k]) for k in ("mamabear", "--no-memory"))
        print(f"memory on against --no-memory: {on / off:.2f}x the calls (target <= 1.35), {on_t / off_t:.2f}x the input tokens (target <= 1.5)")
        print(
            f"memory-on run: {ours / same_calls:.2f}x CrewAI with its own memory, "
            f"{ours / base_wall:.2f}x CrewAI without memory (target <= 1.2: {'ok' if ours / base_wall <= 1.2 else 'OVER'}); "
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


def research_calls() -> None:
    """The research crew (3 tasks), each way on a fresh store, then again on the store the first run filled: the model
    calls and input tokens the server saw (issue 30's measure: 9 calls and 1,429 tokens with memory, 3 and 721 without)."""
    with FakeLLM() as fake:
        model_dir = Path(tempfile.mkdtemp(prefix="mamabear-bench-analysis-"))
        (model_dir / "config").mkdir()
        (model_dir / "config" / "memory.yaml").write_text("analysis: model\n")
        run = [MAMABEAR, "run", "research", "-i", "topic=otters", "--base-url", fake.url, "--quiet"]
        ways = {"memory on": ([], {}), "analysis: model": ([], {"MAMABEAR_CONFIG_DIR": str(model_dir)}), "--no-memory": (["--no-memory"], {})}
        print("\nresearch crew (3 tasks), instant local model, cache off: first run on a fresh store | second run on it")
        figures = {}
        for name, (flags, extra) in ways.items():
            home = tempfile.mkdtemp(prefix="mamabear-bench-research-")
            env = {**os.environ, "MAMABEAR_HOME": home, "MAMABEAR_NO_MEMORY": "", "MAMABEAR_NO_CACHE": "1", **extra}
            first, second = child([*run, *flags], env, fake), child([*run, *flags], env, fake)
            figures[name] = (first, second)
            print(f"{name:<16}{first[2]:>4} calls {first[3]:>6,} tokens in  | {second[2]:>4} calls {second[3]:>6,} tokens in")
        (on1, on2), (off1, off2) = figures["memory on"], figures["--no-memory"]
        print(
            f"memory on against --no-memory: first run {on1[2] / off1[2]:.2f}x calls, {on1[3] / off1[3]:.2f}x tokens; "
            f"second run {on2[2] / off2[2]:.2f}x calls, {on2[3] / off2[3]:.2f}x tokens (targets <= 1.35 and <= 1.5)"
        )


if __name__ == "__main__":
    main()
    research_calls()
