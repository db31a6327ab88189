"""mamabear's run overhead against plain CrewAI on a 7-task sequential crew with an instant local model.

Both run in this one process against the same scripted server (tests/fakellm.py), the
same agents, tasks and prompts; mamabear adds routing, the run store, event tracking and
cost accounting. Target: mamabear's wall time within 1.3x of plain CrewAI's. Then the
whole CLI run in a subprocess, for its peak RSS (target: under 400 MB).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from offline import CREW, INPUTS, FakeLLM

ROUNDS = 5


def plain_crewai(catalog, plan, url: str, memory: bool = False) -> float:
    """``memory``: with CrewAI's own Memory (its LanceDB store, the same local embedder, the first agent's model)."""
    from crewai import LLM, Agent, Crew, Process, Task

    start = time.perf_counter()  # like mamabear's, this counts building the agents, tasks and crew
    agents = {}
    for planned in plan.agents:
        spec = catalog.agent(planned.id)
        llm = LLM(model=planned.route.llm_model, base_url=url, api_key="not-needed", temperature=planned.temperature)
        agents[(planned.id, planned.tier)] = Agent(role=spec.role, goal=spec.goal, backstory=spec.backstory, llm=llm, verbose=False)
    tasks, by_id = [], {}
    for planned in plan.tasks:
        spec = catalog.tasks[planned.id]
        extra = {"context": [by_id[c] for c in spec.context]} if spec.context else {}
        task = Task(description=spec.description, expected_output=spec.expected_output, agent=agents[(planned.agent, planned.tier)], name=spec.id, **extra)
        by_id[spec.id] = task
        tasks.append(task)
    extra = {}
    if memory:
        from crewai.memory.unified_memory import Memory

        from mamabear.memory.embedder import LocalEmbedder

        first = plan.agents[0]
        extra["memory"] = Memory(
            llm=LLM(model=first.route.llm_model, base_url=url, api_key="not-needed", temperature=first.temperature), embedder=LocalEmbedder()
        )
    crew = Crew(agents=list(agents.values()), tasks=tasks, process=Process.sequential, verbose=False, **extra)
    crew.kickoff(inputs=plan.inputs)
    return time.perf_counter() - start


def with_mamabear(ws, plan) -> float:
    from mamabear.engine.attempt import Attempt

    start = time.perf_counter()
    result = Attempt(ws, plan, []).run()
    assert result.status == "completed", result.error
    return time.perf_counter() - start


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    from mamabear.engine.plan import make_plan
    from mamabear.engine.services import Services

    with FakeLLM() as fake:
        ws = Services(base_url=fake.url)
        plan = make_plan(ws.catalog, ws.models, CREW, INPUTS, ws.settings)
        plain_crewai(ws.catalog, plan, fake.url)  # warm-up: imports, first connections
        with_mamabear(ws, plan)
        plain, ours = [], []
        for _ in range(ROUNDS):
            plain.append(plain_crewai(ws.catalog, plan, fake.url))
            ours.append(with_mamabear(ws, plan))
        p, m = statistics.median(plain), statistics.median(ours)
        print(f"7-task sequential crew '{CREW}', instant local model, median of {ROUNDS} rounds")
        print(f"{'plain CrewAI':<16}{p * 1000:>10.1f} ms")
        print(f"{'mamabear':<16}{m * 1000:>10.1f} ms")
        print(f"{'ratio':<16}{m / p:>10.2f} x   (target <= 1.30: {'ok' if m / p <= 1.3 else 'OVER'})")

        # Memory adds its own model calls and the local embedder (torch), which plain CrewAI above does not run.
        cli_run(fake.url, "CLI run", no_memory=True)
        cli_run(fake.url, "with memory", no_memory=False)


def cli_run(url: str, label: str, no_memory: bool) -> None:
    """One whole CLI run as a child process: wall time and its peak RSS (a fresh child each time)."""
    env = {**os.environ, "MAMABEAR_NO_MEMORY": "1" if no_memory else ""}
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(Path(sys.executable).with_name("mamabear")), "run", CREW, "-i", f"goal={INPUTS['goal']}", "--base-url", url, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - start
    assert status == 0, f"{label} failed"
    peak_mb = usage.ru_maxrss / 1024
    print(f"{label:<16}{took * 1000:>10.1f} ms wall (with start-up), peak RSS {peak_mb:.0f} MB (target < 400 MB: {'ok' if peak_mb < 400 else 'OVER'})")


if __name__ == "__main__":
    main()
