"""The run store on PostgreSQL (MAMABEAR_DATABASE_URL), against a real server: MAMABEAR_TEST_POSTGRES_URL when set (a
superuser's URL), else a throwaway one the tests start from the pgserver wheel (tests/pgserver_fixture.py)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from pgserver_fixture import pgserver_url


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("MAMABEAR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with pgserver_url() as url:
        yield url


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh schema-less database per test, dropped afterwards."""
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"mb_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    yield url
    sa.create_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_run_is_recorded_in_postgresql(cli, fake, pg_url, monkeypatch, isolated):
    monkeypatch.setenv("MAMABEAR_DATABASE_URL", pg_url)
    run = cli("run", "research", "-i", "topic=seals", "--base-url", fake.url, "--json", "--quiet")
    assert run.code == 0, run.err
    doc = run.json()
    listed = cli("runs", "list", "--json").json()
    assert [r["id"] for r in listed] == [doc["run_id"]]
    assert listed[0]["llm_calls"] == len(fake.chat_requests) == doc["totals"]["llm_calls"]
    shown = cli("runs", "show", doc["run_id"][:15], "--json").json()
    assert shown["tasks"] == doc["tasks"] and shown["inputs"] == {"topic": "seals", "audience": "engineers"}
    assert not (isolated / "mamabear.db").exists()  # nothing went to the SQLite default


def test_migrations_run_once(pg_url):
    from mamabear.store.database import MIGRATIONS, Store

    Store.open(pg_url)
    store = Store.open(pg_url)
    with store.tx() as conn:
        applied = conn.execute(sa.text("SELECT name FROM _migrations")).scalars().all()
    assert sorted(applied) == sorted(m.__name__ for m in MIGRATIONS)
