"""What a mission's orchestration costs, against an instant scripted model (tests/fakellm.py).

1. Overhead per step: a mission of N one-step items (each checked by a file criterion in the
   local sandbox) against the same N tasks kicked off as one-task plain CrewAI crews, the same
   agents, prompts and server, in this one process. The difference per step is what mamabear
   adds: the task row, the tracker and store writer, the checks, PLAN.md and the saved course.
   Measured with the shared memory off (the orchestration alone) and on (the default).
2. A 200-step mission (a 198-item plan, then the confirmation), run as the CLI in a child
   process: wall time, peak RSS, and at steps 10, 100 and 200 the store's size and the size of
   the saved course (the mission's checkpoint), read back from the store.
3. Models that behave as real ones do (the CLI, defaults on): for each behaviour, how the mission
   ends, its steps, and the model calls and cost until then, beside the happy path. The server's
   own request count is printed beside the store's, and the largest request it was sent.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from offline import FakeLLM

ITEMS = 20  # items of the overhead mission
ROUNDS = 3
LONG_ITEMS = 198  # + the plan and the confirmation: 200 steps
SAMPLES = (10, 100, 200)
PLANNER = "Make the plan that reaches this goal"
CONFIRM = "Every item of the plan is done"


def plan_of(n: int) -> dict:
    specialists = ["devops_specialist", "research_specialist", "integration_architect", "tool_curator"]
    return {
        "items": [
            {
                "id": f"i{k:03d}",
                "title": f"Step {k} of the work",
                "specialist": specialists[k % len(specialists)],
                "instructions": f"Do part {k} of the work and say what you did.",
                "depends_on": [f"i{k - 1:03d}"] if k > 1 else [],
                "criteria": [{"kind": "file", "check": "PLAN.md"}],
            }
            for k in range(1, n + 1)
        ]
    }


def script(fake: FakeLLM, n: int) -> None:
    fake.reset()
    fake.add(contains=PLANNER, times=1, text=json.dumps(plan_of(n)))
    fake.add(contains=CONFIRM, text='{"passed": true, "reason": "every item says it is done"}')


def plain_steps(catalog, plan, url: str, n: int) -> float:
    """The mission's item steps as plain CrewAI: one one-task crew per item, nothing recorded, nothing checked."""
    from crewai import LLM, Agent, Crew, Process, Task

    from mamabear.mission import prompts
    from mamabear.mission.plan import MissionPlan

    items = MissionPlan.model_validate(plan_of(n)).items
    by_id = {a.id: a for a in plan.agents}
    start = time.perf_counter()
    results: dict[str, str] = {}
    for item in items:
        planned = by_id[item.specialist]
        spec = catalog.agent(planned.id)
        llm = LLM(model=planned.route.llm_model, base_url=url, api_key="not-needed", temperature=planned.temperature)
        agent = Agent(role=spec.role, goal=spec.goal, backstory=spec.backstory, llm=llm, verbose=False)
        description, expected = prompts.item_task(item, results)
        task = Task(name=item.id, description=description, expected_output=expected, agent=agent)
        results[item.id] = str(Crew(agents=[agent], tasks=[task], process=Process.sequential, verbose=False).kickoff().raw)
    return (time.perf_counter() - start) / n


def mission_steps(ws, plan, n: int) -> float:
    """A mission of n items, in this process; its item steps' mean wall time (the plan and confirmation steps left out)."""
    from mamabear.engine.attempt import Attempt
    from mamabear.mission.config import MissionConfig
    from mamabear.mission.runner import Mission
    from mamabear.observe import Event, RunObserver, RunState

    class Clock(RunObserver):
        def __init__(self) -> None:
            self.first: float | None = None
            self.last: float | None = None

        def event(self, state: RunState, event: Event) -> None:
            if event.kind == "mission_item_started" and self.first is None:
                self.first = time.perf_counter()
            if event.kind == "mission_item_done":
                self.last = time.perf_counter()

    clock = Clock()
    result = Attempt(ws, plan, [clock], work=Mission("bench", MissionConfig.load(ws.roots), ws.catalog)).run()
    assert result.status == "completed", result.error
    assert clock.first is not None and clock.last is not None
    return (clock.last - clock.first) / n  # from the first item's start to the last item's checks: n items' steps


def overhead(memory: bool) -> None:
    import logging

    logging.disable(logging.WARNING)
    from mamabear.engine.plan import make_plan
    from mamabear.engine.services import Services
    from mamabear.mission.runner import mission_crew

    os.environ.pop("MAMABEAR_NO_MEMORY", None) if memory else os.environ.setdefault("MAMABEAR_NO_MEMORY", "1")
    with FakeLLM() as fake:
        ws = Services(base_url=fake.url)
        assert (ws.settings.no_memory is not True) == memory
        plan = make_plan(ws.catalog, ws.models, mission_crew("bench"), {"goal": "bench"}, ws.settings, sandbox=ws.sandbox)
        script(fake, ITEMS)
        mission_steps(ws, plan, ITEMS)  # warm-up: imports, the sandbox, first connections
        plain_steps(ws.catalog, plan, fake.url, ITEMS)
        plain, ours = [], []
        for _ in range(ROUNDS):
            plain.append(plain_steps(ws.catalog, plan, fake.url, ITEMS))
            script(fake, ITEMS)
            ours.append(mission_steps(ws, plan, ITEMS))
        p, m = statistics.median(plain), statistics.median(ours)
        print(f"per item step, {ITEMS}-item mission, instant local model, median of {ROUNDS} rounds, memory {'on' if memory else 'off'}")
        print(f"{'plain CrewAI':<28}{p * 1000:>9.1f} ms  (one one-task crew)")
        print(f"{'mamabear mission':<28}{m * 1000:>9.1f} ms  (the same step, recorded, checked, saved)")
        print(f"{'orchestration overhead':<28}{(m - p) * 1000:>9.1f} ms  per step ({m / p:.2f}x)")


def long_mission() -> None:
    """The 200-step mission as the CLI in a child process; the store read back at steps 10, 100, 200."""
    with FakeLLM() as fake:
        script(fake, LONG_ITEMS)
        home = tempfile.mkdtemp(prefix="mamabear-bench-mission-")
        env = {**os.environ, "MAMABEAR_HOME": home}
        start = time.perf_counter()
        child = subprocess.Popen(
            [str(Path(sys.executable).with_name("mamabear")), "mission", "a long bench mission", "--base-url", fake.url, "--quiet", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        sizes = sample(Path(home), child)
        out = child.stdout.read() if child.stdout else b""
        _, status, usage = os.wait4(child.pid, 0)
        took = time.perf_counter() - start
        doc = json.loads(out)
        assert status == 0 and doc["status"] == "completed", doc.get("error")
        print(f"\n{doc['mission']['steps']}-step mission ({LONG_ITEMS} items), the CLI in a child process, instant local model")
        print(f"{'wall time':<28}{took:>9.1f} s   ({took / doc['mission']['steps'] * 1000:.0f} ms per step, start-up included)")
        print(f"{'peak RSS':<28}{usage.ru_maxrss / 1024:>9.0f} MB")
        print(f"{'step':>6}{'store files':>14}{'store rows':>13}{'rows/step':>12}{'checkpoint':>13}")
        for step, (files, rows, checkpoint) in sizes.items():
            print(f"{step:>6}{files / 1024:>12.0f}KB{rows / 1024:>11.0f}KB{rows / step / 1024:>10.1f}KB{checkpoint / 1024:>11.1f}KB")


def sample(home: Path, child: subprocess.Popen) -> dict[int, tuple[int, int, int]]:
    """When the mission has taken each of SAMPLES steps: the store's files, the bytes of its rows, the latest saved course."""
    sizes: dict[int, tuple[int, int, int]] = {}
    database = home / "mamabear.db"
    while len(sizes) < len(SAMPLES):
        ended = child.poll() is not None  # then read once more
        read = read_store(database)
        if read is not None:
            saved, rows = read
            steps = json.loads(saved)["course"]["steps"]
            for step in SAMPLES:
                if steps >= step and step not in sizes:
                    files = [database, database.with_name(database.name + "-wal")]
                    sizes[step] = (sum(f.stat().st_size for f in files if f.exists()), rows, len(saved.encode()))
        if ended and len(sizes) < len(SAMPLES):
            raise SystemExit(f"the mission ended before step {SAMPLES[len(sizes)]}")
        time.sleep(0.05)
    return sizes


def read_store(database: Path) -> tuple[str, int] | None:
    """The latest saved course, and the bytes of every row of every table (what the store holds, apart from free pages)."""
    import sqlite3

    if not database.exists():
        return None
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
            conn.execute("begin")  # one snapshot for both reads
            row = conn.execute("select data from events where kind = 'mission_state' order by id desc limit 1").fetchone()
            total = 0
            for (table,) in conn.execute("select name from sqlite_master where type = 'table'").fetchall():
                columns = [c[1] for c in conn.execute(f"pragma table_info({table})")]
                total += conn.execute(f"select coalesce(sum({' + '.join(f'coalesce(length({c}), 0)' for c in columns)}), 0) from {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    return (row[0], total) if row else None


# ---------------------------------------------------------------- models that behave as real ones do

GOAL = "leave a greeting in hello.txt"
ITEM = "Write the greeting file"
HELLO = {
    "items": [
        {
            "id": "hello",
            "title": ITEM,
            "specialist": "devops_specialist",
            "instructions": "Create hello.txt containing the word hi.",
            "criteria": [{"kind": "file", "check": "hello.txt"}, {"kind": "command", "check": "grep -q hi hello.txt"}],
        }
    ]
}


def _bash(command: str) -> list[dict]:
    return [{"name": "bash", "arguments": {"command": command}}]


def _greets(fake: FakeLLM) -> None:
    fake.add(task=ITEM, times=1, tool_calls=[{"name": "file_create", "arguments": {"path": "hello.txt", "file_text": "hi\n"}}])
    fake.add(task=ITEM, times=1, text="Wrote hello.txt with hi.")
    fake.add(contains=CONFIRM, times=1, text='{"passed": true, "reason": "hello.txt holds hi"}')


def _planned(fake: FakeLLM, plan: dict = HELLO) -> None:
    fake.add(contains=PLANNER, times=1, text=json.dumps(plan))
    fake.add(contains="The plan must change", text=json.dumps(plan))


def happy(fake: FakeLLM) -> None:
    _planned(fake)
    _greets(fake)


def schema_only(fake: FakeLLM) -> None:
    fake.add(schema=True)


def exact_loop(fake: FakeLLM) -> None:
    _planned(fake)
    fake.add(task=ITEM, tool_calls=_bash("cat hello.txt"))


def varied_loop(fake: FakeLLM) -> None:
    _planned(fake)
    for n in range(400):
        fake.add(task=ITEM, times=1, tool_calls=_bash(f"echo attempt {n}"))


def crewai_guard(fake: FakeLLM) -> None:
    """The same call and result every other call (no rule of ours sees a loop; CrewAI's guard raises at the 5th)."""
    _planned(fake)
    for n in range(400):
        fake.add(task=ITEM, times=1, tool_calls=_bash("cat hello.txt" if n % 2 == 0 else f"echo step {n}"))


def varying_failure(fake: FakeLLM) -> None:
    plan = {"items": [{**HELLO["items"][0], "criteria": [{"kind": "command", "check": "echo took $RANDOM ms in run $$; false"}]}]}
    _planned(fake, plan)


def hard_among_independents(fake: FakeLLM) -> None:
    items = [{**HELLO["items"][0], "id": "hard", "title": "Do hard", "criteria": [{"kind": "command", "check": "echo $RANDOM; false"}]}]
    for n in range(1, 10):
        criteria = [{"kind": "file", "check": f"f{n}.txt"}]
        items.append({"id": f"f{n}", "title": f"Do f{n}", "specialist": "devops_specialist", "instructions": f"Make f{n}.txt.", "criteria": criteria})
        fake.add(task=f"Do f{n}", times=1, tool_calls=[{"name": "file_create", "arguments": {"path": f"f{n}.txt", "file_text": "ok\n"}}])
        fake.add(task=f"Do f{n}", times=1, text=f"Wrote f{n}.txt.")
    _planned(fake, {"items": items})


BEHAVIOURS = (
    ("happy path", happy),
    ("answers only the schema", schema_only),
    ("exact loop (same call, same result)", exact_loop),
    ("loop with varied arguments", varied_loop),
    ("A x A y A ... (CrewAI's own guard)", crewai_guard),
    ("a failure whose numbers vary", varying_failure),
    ("one hard item among 9 independents", hard_among_independents),
)


def behaviours() -> None:
    print("\nmodels that behave as real ones do: `mamabear mission` as a user runs it (memory and cache on), one run each")
    print(f"{'behaviour':<40}{'ends':<18}{'exit':>5}{'steps':>7}{'calls':>7}{'server':>8}{'tokens in':>11}{'cost':>10}{'largest':>9}{'time':>8}")
    with FakeLLM() as fake:
        for name, script_of in BEHAVIOURS:
            fake.reset()
            script_of(fake)
            home = tempfile.mkdtemp(prefix="mamabear-bench-mission-")
            env = {**os.environ, "MAMABEAR_HOME": home, "MAMABEAR_BASE_URL_PRICES": "litellm"}  # priced as the providers' models
            env.pop("MAMABEAR_NO_MEMORY", None)
            start = time.perf_counter()
            done = subprocess.run(
                [str(Path(sys.executable).with_name("mamabear")), "mission", GOAL, "--base-url", fake.url, "--json", "--quiet"],
                capture_output=True,
                env=env,
                timeout=900,
            )
            took = time.perf_counter() - start
            doc = json.loads(done.stdout)
            totals, mission = doc["totals"], doc.get("mission") or {}
            calls = totals["llm_calls"] - totals["cache_hits"]
            largest = max((len(json.dumps(r["body"])) for r in fake.chat_requests), default=0)  # a request's size, bounded by the try's budget
            ends = str(doc["status"])
            print(
                f"{name:<40}{ends:<18}{done.returncode:>5}{mission.get('steps', 0):>7}{calls:>7}{len(fake.chat_requests):>8}"
                f"{totals['tokens_in']:>11,}{'$' + format(totals['cost_usd'] or 0, '.4f'):>10}{largest / 1024:>7.1f}KB{took:>7.1f}s"
            )


if __name__ == "__main__":
    overhead(memory=False)
    overhead(memory=True)
    behaviours()
    long_mission()
