"""`runs fork RUN --from TASK`: a new run from one task of another, the tasks before it kept, no model asked for them."""

from __future__ import annotations

from conftest import store_for


def test_a_fork_from_task_2_asks_nothing_for_task_1_keeps_its_output_and_records_its_parent(cli, fake, isolated):
    parent = cli("run", "research", "-i", "topic=honey bees", "--base-url", fake.url, "--json", "--quiet")
    assert parent.code == 0, parent.err
    parent_id, asked = parent.json()["run_id"], len(fake.chat_requests)
    forked = cli("runs", "fork", parent_id, "--from", "fact_check", "-i", "topic=wasps", "--base-url", fake.url, "--json", "--quiet")
    assert forked.code == 0, forked.err
    doc = forked.json()
    assert doc["run_id"] != parent_id and doc["status"] == "completed"
    again = fake.chat_requests[asked:]
    assert again and not [r for r in again if r["task"].startswith("Research")]  # task 1 was not asked again
    assert all("wasps" in r["text"] for r in again)  # the fork's own input
    tasks = doc["tasks"]
    assert tasks[0]["output"] == parent.json()["tasks"][0]["output"] and tasks[0]["llm_calls"] == 0
    assert [t["status"] for t in tasks] == ["completed"] * len(tasks)
    assert doc["totals"]["llm_calls"] == len(again)
    shown = cli("runs", "show", doc["run_id"], "--json").json()
    assert shown["parent"] == {"run_id": parent_id, "from_task": "fact_check"}
    assert cli("runs", "show", parent_id, "--json").json()["forks"] == [{"run_id": doc["run_id"], "from_task": "fact_check", "status": "completed"}]
    text = cli("runs", "show", doc["run_id"]).out
    assert f"forked from run {parent_id} at task fact_check" in text
    forked_row = store_for(isolated).run(doc["run_id"])
    assert (forked_row.parent_id, forked_row.forked_from) == (parent_id, "fact_check")  # the lineage, in the store


def test_a_fork_from_an_unknown_task_or_past_an_unfinished_one_is_refused(cli, fake, isolated):
    fake.add(task="Check every claim", status=400, times=10)  # task 2 fails: the run stops there
    failed = cli("run", "research", "-i", "topic=ants", "--base-url", fake.url, "--json", "--quiet")
    assert failed.code != 0
    run_id = failed.json()["run_id"]
    unknown = cli("runs", "fork", run_id, "--from", "nope")
    assert unknown.code == 2 and "has no task 'nope'; its tasks: research_topic, fact_check" in unknown.err
    past = cli("runs", "fork", run_id, "--from", "3", "--base-url", fake.url)
    assert past.code == 2 and "task fact_check of run" in past.err and "fork from fact_check" in past.err
    assert [r["id"] for r in cli("runs", "list", "--json").json()] == [run_id]  # nothing recorded
