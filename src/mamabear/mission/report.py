"""A mission's report, read back from its run's events: every plan version, each item's tries and verdicts, the outcome.

The runner records what happened as it goes (``mission_plan``, ``mission_item_started``,
``mission_item_done``/``failed``, ``mission_state``, ``mission_finished``); this module only reads
them, so a report can be made for any mission in the store, finished, stopped or still running.
"""

from __future__ import annotations

from typing import Any

from mamabear.mission.state import MissionState
from mamabear.store.report import breakdown

FILES_SHOWN = 200  # the files of the workspace listed in the report, at most
KINDS = ("mission_plan", "mission_item_done", "mission_item_failed", "mission_finished", "mission_continued")


def mission_report(store: Any, run_id: str) -> dict[str, Any]:
    """What was achieved, the evidence of each criterion, what was given up and why, the files made, the cost by specialist."""
    run = store.run(run_id)
    events = store.events(run_id, kinds=KINDS)
    by_version: dict[int, dict[str, Any]] = {}  # a planning step done again (after a kill) keeps its last answer
    for n, e in enumerate((e for e in events if e["kind"] == "mission_plan" and e["data"]), start=1):
        by_version[e["data"].get("version", n)] = dict(e["data"], ts=e["ts"], version=e["data"].get("version", n))
    plans = list(by_version.values())
    state = MissionState.read((store.last_event(run_id, "mission_state") or {}).get("data")) or MissionState()
    last = next((e for e in reversed(events) if e["kind"] in ("mission_finished", "mission_continued")), None)
    finished = last["data"] if last is not None and last["kind"] == "mission_finished" else None  # not an ending carried on
    course, records = state.course, state.course.items
    items: dict[str, dict[str, Any]] = {}
    for plan in plans:  # every item any version planned, as the latest version that has it describes it
        for item in plan["plan"]["items"]:
            items[item["id"]] = {
                "id": item["id"],
                "title": item["title"],
                "specialist": item["specialist"],
                "criteria": item["criteria"],
                "plan_version": plan["version"],
                "status": records[item["id"]].status if item["id"] in records else "dropped" if records else "pending",
                "tries": items.get(item["id"], {}).get("tries", []),
            }
    for e in events:
        data = e["data"] or {}
        if e["kind"] in ("mission_item_done", "mission_item_failed") and data.get("item") in items:
            passed = e["kind"] == "mission_item_done"
            try_ = {"try": data.get("try"), "task_position": e["task_position"], "passed": passed, "verdicts": data.get("verdicts", [])}
            items[data["item"]]["tries"].append(try_ | ({} if passed else {"feedback": data.get("feedback")}))
    given_up = []
    for item in items.values():
        last = item["tries"][-1] if item["tries"] else {}
        failed = f"failed its checks ({last['feedback']})" if last.get("feedback") else None
        if item["status"] == "failed":
            given_up.append({"item": item["id"], "why": failed or "failed its checks"})
        elif item["status"] == "dropped":  # a re-plan left it out
            left_out = f"left out of plan v{item['plan_version'] + 1}"
            given_up.append({"item": item["id"], "why": f"{failed}, then {left_out}" if failed else left_out})
    files = finished.get("files") if finished else None
    cost = [{"specialist": r["agent"], **{k: v for k, v in r.items() if k != "agent"}} for r in breakdown(store.llm_calls(run_id), "agent")]
    return {
        "goal": str((run.inputs or {}).get("goal", "")),
        "status": str(run.status),
        "achieved": finished["reason"] if finished else (run.error or str(run.status)),
        "steps": course.steps,
        "max_steps": state.max_steps,
        "replans": course.replans,
        "plans": [{"version": p["version"], "edited": p.get("edited", False), "items": p["plan"]["items"], "ts": p["ts"]} for p in plans],
        "items": list(items.values()),
        "given_up": given_up,
        "files": files[:FILES_SHOWN] if files is not None else None,
        "files_cut": files is not None and len(files) > FILES_SHOWN,
        "cost_by_specialist": cost,
    }
