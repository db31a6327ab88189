"""mamabear stats: fleet KPIs over a store whose every figure is worked out by hand here."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import REPO, subprocess_env
from mamabear.store.database import Store, attempts, llm_calls, runs
from mamabear.store.ledger import Ledger
from mamabear.store.stats import fleet_stats, percentile

NOW = 1_700_000_000.0
DAY = 86_400.0


def make_run(
    store: Store,
    run_id: str,
    created: float,
    tries: list[tuple[str, str, float | None]],
    task_rows: list[tuple[str, float | None]] = (),
    crew: str = "research",
) -> None:
    """A run created at ``created``; each try is (kind, status, finished_at); each task (status, finished_at)."""
    store.create_run(run_id, crew, "sequential", {}, {}, [{"position": i, "task": f"t{i}", "agent": "a"} for i in range(1, len(task_rows) + 1)])
    finished = None
    for kind, status, finished in tries:
        seen = store.run(run_id).status  # what a resume checks before it claims the run
        number = store.start_attempt(run_id, kind, pid=1, host="elsewhere", options={}, checkpoint=None, expected=seen)
        if status != "running":
            store.finish_attempt(run_id, number, status, None if status == "completed" else f"{status} on try {number}")
        with store.tx() as conn:
            conn.execute(
                attempts.update().where(attempts.c.run_id == run_id, attempts.c.number == number).values(started_at=created + number, finished_at=finished)
            )
    for position, (status, at) in enumerate(task_rows, start=1):
        store.update_task(run_id, position, status=status, finished_at=at)
    with store.tx() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(created_at=created, finished_at=finished))


def call(store: Store, run_id: str, call_id: str, **values: object) -> None:
    store.save_llm_call(call_id, run_id, **{"outcome": "ok", "attempt": 1, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, **values})


@pytest.fixture
def fleet(tmp_path) -> Store:
    """Seven runs in the last week and one older; see each run's comment for what it contributes."""
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    # A: one attempt, completed; first task done 50 s after creation.
    make_run(store, "a_ok", NOW - 1000, [("run", "completed", NOW - 900)], [("completed", NOW - 950), ("completed", NOW - 910)])
    # B: failed, resumed 300 s later to completion (one recovery of 300 s); first result at 100 s, during the failed try.
    make_run(
        store,
        "b_resumed",
        NOW - 5000,
        [("run", "failed", NOW - 4800), ("resume", "completed", NOW - 4500)],
        [("completed", NOW - 4900), ("completed", NOW - 4550)],
    )
    # C: failed, never resumed: unrecovered, no result.
    make_run(store, "c_failed", NOW - 3000, [("run", "failed", NOW - 2900)], [("failed", NOW - 2900)])
    # D: cancelled after a first result at 20 s: finished, unrecovered, not autonomous.
    make_run(store, "d_cancelled", NOW - 2000, [("run", "cancelled", NOW - 1950)], [("completed", NOW - 1980), ("pending", None)])
    # F: still running (on another host); not finished.
    make_run(store, "f_running", NOW - 100, [("run", "running", None)], [("running", None)])
    # G: interrupted, then out of time, then completed: two recoveries, of 300 s and 200 s; first result at 300 s.
    make_run(
        store,
        "g_twice",
        NOW - 6000,
        [("run", "interrupted", NOW - 5900), ("resume", "time_limit", NOW - 5800), ("resume", "completed", NOW - 5600)],
        [("completed", NOW - 5700)],
    )
    # H: another crew, one attempt, completed, first result at 50 s, and half an hour of sandbox at $0.10/h.
    make_run(store, "h_dev", NOW - 500, [("run", "completed", NOW - 400)], [("completed", NOW - 450)], crew="dev")
    # E: eight days old: outside the default window, and loud enough that leaking it would show.
    make_run(store, "e_old", NOW - 8 * DAY, [("run", "completed", NOW - 8 * DAY + 60)], [("completed", NOW - 8 * DAY + 30)])

    # 20 answered calls, latencies 100..2000 ms, $0.01, 100 tokens in and 10 out each.
    owners = ["a_ok"] * 5 + ["b_resumed"] * 5 + ["c_failed"] * 3 + ["d_cancelled"] * 2 + ["g_twice"] * 2 + ["h_dev"] * 3
    for i, run_id in enumerate(owners, start=1):
        call(store, run_id, f"ok{i}", latency_ms=i * 100.0, cost_usd=0.01, tokens_in=100, tokens_out=10)
    call(store, "b_resumed", "err1", outcome="error", error="429", latency_ms=5000.0, tokens_in=50)  # errors: no latency sample
    call(store, "c_failed", "err2", outcome="error", error="500", latency_ms=7000.0, tokens_in=50)
    call(store, "a_ok", "hit1", latency_ms=1.0, cache_hit=True, saved_usd=0.25)  # a cache hit: no latency sample
    call(store, "f_running", "nolat", latency_ms=None, cost_usd=0.02, tokens_in=30, tokens_out=3)  # answered, latency unknown
    call(store, "e_old", "old1", latency_ms=99_999.0, cost_usd=100.0, tokens_in=1000, tokens_out=1000)
    call(store, "e_old", "old2", outcome="error", cache_hit=True, saved_usd=9.0)

    ledger = Ledger(store)
    ledger.add_session(id="s1", backend="local", kind="dev", status="stopped", workdir="/tmp/x", pooled=False)
    ledger.bill("s1", "h_dev", 1800.0, 0.10)  # $0.05
    ledger.bill("s1", "e_old", 3600.0, 50.0)
    return store


def test_fleet_kpis_over_the_last_week(fleet):
    s = fleet_stats(fleet, 7 * DAY, now=NOW)
    assert s["window"] == {"since": NOW - 7 * DAY, "now": NOW, "crew": None}
    assert s["runs"] == {
        "total": 7,
        "by_status": {"cancelled": 1, "completed": 4, "failed": 1, "running": 1},
        "finished": 6,
        "running": 1,
        "completed": 4,
        "autonomous": 2,
    }
    assert s["success_rate"] == round(4 / 6, 4) == 0.6667
    assert s["autonomous_rate"] == round(2 / 6, 4) == 0.3333  # A and H; B and G were resumed, D cancelled
    assert s["mttr_s"] == round((300 + 300 + 200) / 3, 3) == 266.667
    assert s["recoveries"] == 3
    assert s["unrecovered"] == 2  # C failed, D cancelled
    # first results: A 50, B 100, D 20, G 300, H 50; nearest-rank p50 of 5 is the 3rd: 50
    assert s["time_to_first_result_s"] == {"runs": 5, "mean": 104.0, "p50": 50.0}
    # LLM: 0.05 A + 0.05 B + 0.03 C + 0.02 D + 0.02 G + 0.03 H + 0.02 F = 0.22; sandbox: H's 0.05
    # per completed run: A 0.05, B 0.05, G 0.02, H 0.03 + 0.05 -> mean 0.05
    assert s["cost"] == {"total_usd": 0.27, "llm_usd": 0.22, "sandbox_usd": 0.05, "cost_per_completed_run_usd": 0.05}
    # 24 calls: 20 answered, 2 errors, 1 cache hit, 1 without latency; latencies 100..2000: p50 rank 10, p95 rank 19
    assert s["llm"] == {
        "calls": 24,
        "errors": 2,
        "error_rate": round(2 / 24, 4),
        "latency_ms": {"p50": 1000.0, "p95": 1900.0, "samples": 20},
        "cache_hits": 1,
        "saved_usd": 0.25,
        "tokens_in": 20 * 100 + 2 * 50 + 30,
        "tokens_out": 20 * 10 + 3,
    }
    json.dumps(s)  # one plain JSON document


def test_one_crew_only(fleet):
    s = fleet_stats(fleet, 7 * DAY, crew="dev", now=NOW)
    assert s["window"]["crew"] == "dev"
    assert s["runs"] == {"total": 1, "by_status": {"completed": 1}, "finished": 1, "running": 0, "completed": 1, "autonomous": 1}
    assert (s["success_rate"], s["autonomous_rate"], s["mttr_s"], s["recoveries"], s["unrecovered"]) == (1.0, 1.0, None, 0, 0)
    assert s["time_to_first_result_s"] == {"runs": 1, "mean": 50.0, "p50": 50.0}
    assert s["cost"] == {"total_usd": 0.08, "llm_usd": 0.03, "sandbox_usd": 0.05, "cost_per_completed_run_usd": 0.08}
    assert s["llm"]["calls"] == 3 and s["llm"]["latency_ms"] == {"p50": 1900.0, "p95": 2000.0, "samples": 3}


def test_everything_includes_the_old_run(fleet):
    s = fleet_stats(fleet, None, now=NOW)
    assert s["window"]["since"] is None
    assert s["runs"]["total"] == 8 and s["runs"]["completed"] == 5 and s["runs"]["autonomous"] == 3 and s["runs"]["finished"] == 7
    assert s["success_rate"] == round(5 / 7, 4) and s["autonomous_rate"] == round(3 / 7, 4)
    assert s["time_to_first_result_s"] == {"runs": 6, "mean": round((50 + 100 + 20 + 300 + 50 + 30) / 6, 3), "p50": 50.0}
    assert s["cost"]["total_usd"] == round(0.27 + 100.0 + 50.0, 6) and s["cost"]["cost_per_completed_run_usd"] == round((0.2 + 150.0) / 5, 6)
    assert s["llm"]["calls"] == 26 and s["llm"]["errors"] == 3 and s["llm"]["cache_hits"] == 2 and s["llm"]["saved_usd"] == 9.25
    assert s["llm"]["latency_ms"]["p95"] == 2000.0  # 21 samples: rank ceil(19.95) = 20


def test_an_empty_window_has_no_rates(fleet):
    s = fleet_stats(fleet, 60.0, now=NOW + DAY)
    assert s["runs"] == {"total": 0, "by_status": {}, "finished": 0, "running": 0, "completed": 0, "autonomous": 0}
    assert s["success_rate"] is s["autonomous_rate"] is s["mttr_s"] is s["llm"]["error_rate"] is None
    assert s["time_to_first_result_s"] == {"runs": 0, "mean": None, "p50": None}
    assert s["cost"] == {"total_usd": 0.0, "llm_usd": 0.0, "sandbox_usd": 0.0, "cost_per_completed_run_usd": None}
    assert s["llm"]["latency_ms"] == {"p50": None, "p95": None, "samples": 0} and s["llm"]["calls"] == 0


def test_nearest_rank_percentile():
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert [percentile([1.0, 2.0, 3.0, 4.0], p) for p in (0, 25, 50, 51, 95, 100)] == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_a_hundred_thousand_calls_stay_fast(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'big.db'}")
    make_run(store, "big", NOW - 100, [("run", "completed", NOW - 10)], [("completed", NOW - 50)])
    rows = [
        {
            "id": f"c{i}",
            "run_id": "big",
            "outcome": "error" if i % 100 == 0 else "ok",
            "latency_ms": float(i % 1000),
            "tokens_in": 1,
            "tokens_out": 1,
            "cost_usd": 0.001,
            "cache_hit": False,
        }
        for i in range(100_000)
    ]
    with store.tx() as conn:
        conn.execute(llm_calls.insert(), rows)
    started = time.perf_counter()
    s = fleet_stats(store, DAY, now=NOW)
    assert time.perf_counter() - started < 2.0
    assert s["llm"]["calls"] == 100_000 and s["llm"]["errors"] == 1000 and s["llm"]["error_rate"] == 0.01
    assert s["cost"]["total_usd"] == 100.0 and s["llm"]["latency_ms"]["samples"] == 99_000


# ------------------------------------------------------------ the command


@pytest.fixture
def stats_cli(cli, monkeypatch):
    """The real CLI (mamabear.cli.main, its error handling included) with `stats` registered if it is not yet."""
    from mamabear.cli import app
    from mamabear.cli.stats import stats

    if not any(c.name == "stats" for c in app.registered_commands):
        monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))
        app.command("stats")(stats)
    return cli


def _home_store() -> Store:
    from mamabear.engine.services import Services

    store = Services().store
    now = time.time()
    make_run(store, "recent", now - 120, [("run", "failed", now - 100), ("resume", "completed", now - 40)], [("completed", now - 90)])
    make_run(store, "ancient", now - 30 * DAY, [("run", "completed", now - 30 * DAY + 5)], [("completed", now - 30 * DAY + 5)])
    call(store, "recent", "r1", latency_ms=250.0, cost_usd=0.5, tokens_in=10, tokens_out=5)
    return store


def test_stats_json_is_one_document(stats_cli):
    _home_store()
    result = stats_cli("stats", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    keys = {"window", "runs", "success_rate", "autonomous_rate", "mttr_s", "recoveries", "unrecovered", "time_to_first_result_s", "cost", "llm"}
    assert set(doc) == keys | {"evals"}
    assert doc["runs"]["total"] == 1 and doc["success_rate"] == 1.0 and doc["autonomous_rate"] == 0.0
    assert doc["mttr_s"] == 60.0 and doc["recoveries"] == 1 and doc["time_to_first_result_s"]["mean"] == 30.0
    assert doc["cost"]["cost_per_completed_run_usd"] == 0.5 and doc["llm"]["latency_ms"]["p50"] == 250.0
    assert doc["window"]["now"] - doc["window"]["since"] == pytest.approx(7 * DAY)
    everything = stats_cli("stats", "--since", "all", "--json").json()
    assert everything["runs"]["total"] == 2 and everything["window"]["since"] is None
    assert stats_cli("stats", "--since", "1d", "--crew", "nope", "--json").json()["runs"]["total"] == 0


def test_stats_for_people(stats_cli):
    _home_store()
    result = stats_cli("stats", "--since", "all")
    assert result.code == 0, result.err
    for needle in ("2 runs, all time", "success rate", "100.0%", "MTTR 1m00s", "1 recovered", "$0.5000", "p50 250ms"):
        assert needle in result.out, result.out


def test_stats_with_no_runs_says_so(stats_cli):
    result = stats_cli("stats")
    assert result.code == 0 and result.out.startswith("no runs since ") and result.err == ""
    assert stats_cli("stats", "--since", "all", "--crew", "dev").out.strip() == "no runs of crew dev yet."
    assert stats_cli("stats", "--json").json()["runs"]["total"] == 0


@pytest.mark.parametrize("value", ["bogus", "0", "-3d"])
def test_bad_since_exits_2_with_one_sentence(stats_cli, value):
    result = stats_cli("stats", "--since", value)
    assert result.code == 2 and result.out == ""
    assert "--since" in result.err and "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    as_json = stats_cli("stats", "--since", value, "--json")
    assert as_json.code == 2 and as_json.json()["exit_code"] == 2 and as_json.json()["error"].startswith(f"--since '{value}'")


def test_the_command_module_does_not_import_sqlalchemy():
    code = "import sys, mamabear.cli.stats; print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_orphaned_running_runs_are_settled_before_counting(stats_cli):
    """A run marked running on this machine whose process is gone counts as interrupted, as `runs list` shows it."""
    from mamabear.engine.services import Services
    from mamabear.store.liveness import this_host

    store = Services().store
    store.create_run("orphan", "research", "sequential", {}, {}, [])
    store.start_attempt("orphan", "run", pid=2**22 + 12345, host=this_host(), options={}, checkpoint=None)
    doc = stats_cli("stats", "--json").json()
    assert doc["runs"]["by_status"] == {"interrupted": 1} and doc["runs"]["running"] == 0 and doc["unrecovered"] == 1
