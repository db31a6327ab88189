"""The run store's schema upgrades in place."""

from __future__ import annotations

import sqlite3

from mamabear.store.database import MIGRATIONS, Store


def test_a_store_from_before_resumable_runs_is_upgraded_and_keeps_its_runs(cli, fake, isolated):
    first = cli("run", "research", "-i", "topic=moles", "--base-url", fake.url, "--json", "--quiet").json()
    path = isolated / "mamabear.db"
    with sqlite3.connect(path) as db:  # turn it back into a database as m001 left it
        for table, column in (
            ("runs", "options"),
            ("runs", "host"),
            ("runs", "attempt"),
            ("runs", "cancel_requested"),
            ("llm_calls", "attempt"),
            ("tool_calls", "attempt"),
            ("events", "attempt"),
        ):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DROP TABLE attempts")
        db.execute("DELETE FROM _migrations WHERE name = 'm002_attempts'")

    store = Store.open(f"sqlite:///{path}")
    with store.tx() as conn:
        assert sorted(conn.exec_driver_sql("SELECT name FROM _migrations").scalars()) == sorted(m.__name__ for m in MIGRATIONS)
    old = store.run(first["run_id"])
    assert old.status == "completed" and old.attempt is None and store.attempts(first["run_id"]) == []
    second = cli("run", "research", "-i", "topic=voles", "--base-url", fake.url, "--json", "--quiet").json()
    assert second["status"] == "completed" and [a["kind"] for a in second["attempts"]] == ["run"]
    assert len(cli("runs", "list", "--json").json()) == 2
