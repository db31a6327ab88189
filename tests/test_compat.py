"""The libraries' internals mamabear relies on are where it expects them; when one moves, the failure names it."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, subprocess_env
from mamabear.compat import crewai as crewai_compat
from mamabear.compat import stdlib
from mamabear.compat.check import problems
from mamabear.compat.versions import version


def test_every_internal_mamabear_relies_on_is_where_it_expects():
    assert problems() == []


def test_a_moved_internal_is_named_with_the_library_and_its_version(monkeypatch):
    import atexit

    from crewai import LLM

    monkeypatch.delattr(atexit, "_run_exitfuncs")
    monkeypatch.delattr(LLM, "_resolve_route")
    found = problems()
    assert any(p.startswith("python 3.") and "atexit._run_exitfuncs is gone" in p for p in found), found
    assert any(p.startswith(f"crewai {version('crewai')}: LLM._resolve_route") for p in found), found
    assert stdlib.problems() and len(found) == 2


def test_call_arguments_are_bound_by_call_s_own_signature():
    named = crewai_compat.call_arguments(("hello", [{"name": "t"}]), {"response_model": int})
    assert named == {"messages": "hello", "tools": [{"name": "t"}], "response_model": int}


def test_importing_mamabear_changes_no_library_until_the_run_engine_applies_it():
    code = """
from crewai.state.event_record import EventRecord
import mamabear.engine.checkpoints, mamabear.engine.attempt, mamabear.cli
from crewai.utilities.converter import Converter
assert not getattr(EventRecord.model_dump, "mamabear_skeleton", False), "patched on import"
assert not getattr(Converter.to_json, "mamabear_guarded", False), "patched on import"
from mamabear.compat.crewai import apply_checkpoint_patches, apply_conversion_patch
apply_checkpoint_patches(); apply_checkpoint_patches(); apply_conversion_patch(); apply_conversion_patch()
assert EventRecord.model_dump.mamabear_skeleton and Converter.to_json.mamabear_guarded
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_task_s_text_guardrails_are_found_with_the_llm_its_agent_had():
    from crewai import LLM, Agent, Task

    llm = LLM(model="openai/gpt-4.1-mini", api_key="test-key")
    agent = Agent(role="r", goal="g", backstory="b", llm=llm)
    one = Task(description="d", expected_output="e", agent=agent, guardrail="names a fact")
    many = Task(description="d", expected_output="e", agent=agent, guardrails=["names a fact", lambda out: (True, out)])
    assert [g.llm for g in crewai_compat.llm_guardrails(one)] == [llm]
    assert [g.description for g in crewai_compat.llm_guardrails(many)] == ["names a fact"]  # the function is not an LLM's


def test_kombu_keeps_a_queued_message_where_compat_kombu_reads_it():
    """compat/kombu.py reads kombu's Redis lists and its unacked hash: a message sent is found there, by priority."""
    from mamabear.compat.kombu import holds, queue_depth
    from mamabear.workers.app import make_app, send
    from redisserver import RedisServer

    with RedisServer() as server:
        app = make_app(server.url)
        send(app, "run-first", "q1", again=True)
        send(app, "run-later", "q1")
        assert queue_depth(server.url, ["q1", "q2"]) == {"q1": 2, "q2": 0}
        assert holds(server.url, ["q1"], "run-first") and holds(server.url, ["q1"], "run-later")
        assert not holds(server.url, ["q1"], "run-other") and not holds(server.url, ["q2"], "run-first")


def test_a_hierarchical_crew_s_own_manager_is_made_before_kickoff_and_kept_by_it():
    from crewai import LLM, Agent, Crew, Process, Task

    worker = Agent(role="Noter", goal="g", backstory="b", llm=LLM(model="openai/gpt-4.1-mini", api_key="test-key"))
    crew = Crew(
        agents=[worker],
        tasks=[Task(description="d", expected_output="e")],
        process=Process.hierarchical,
        manager_llm=LLM(model="openai/gpt-4.1", api_key="test-key"),
    )
    manager = crewai_compat.made_manager(crew)
    assert manager is crew.manager_agent and manager.role and manager.allow_delegation and manager.llm.model == "gpt-4.1"
    assert {type(t).__name__ for t in manager.tools} >= {"DelegateWorkTool"}  # it hands work to the crew's agents
    crew._create_manager_agent()  # what kickoff calls: the manager made before is the one that runs
    assert crew.manager_agent is manager and crewai_compat.made_manager(crew) is manager


def test_a_flow_s_steps_are_seen_in_order_and_a_restored_flow_carries_on_down_its_recorded_branch():
    from crewai.flow import Flow, listen, router, start

    ran: list[str] = []

    class Otters(Flow[dict]):
        @start()
        def count(self):
            ran.append("count")
            self.state["n"] = 5

        @router(count)
        def size(self):
            ran.append("size")
            return "big" if self.state["n"] > 3 else "small"

        @listen("big")
        def grow(self):
            ran.append("grow")
            return f"big {self.state['n']}"

        @listen("small")
        def shrink(self):
            ran.append("shrink")

    first = Otters()
    seen: list[tuple[str, str, object]] = []
    with crewai_compat.flow_steps(first, lambda m: seen.append(("started", m, None)), lambda m, out: seen.append(("finished", m, out))):
        assert first.kickoff() == "big 5"
    assert [(k, m) for k, m, _ in seen] == [(k, m) for m in ("count", "size", "grow") for k in ("started", "finished")]
    assert seen[3][2] == "big" and crewai_compat.flow_method() is None

    ran.clear()
    again = Otters()
    crewai_compat.replay_method(again, "size", "big")  # its recorded outcome, not run again
    crewai_compat.restore_flow(again, ["count"], [{"method": "count", "output": None}], {"count": 1}, {"id": first.state["id"], "n": 7})
    assert again.kickoff() == "big 7" and ran == ["grow"]  # neither the finished start nor the router ran; the state was restored
