"""What the run store keeps about sandboxes: session rows, every action taken in one, and billed instance time."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from mamabear.errors import NotFound
from mamabear.store.database import Store, runs, sandbox_actions, sandbox_usage, sessions

OUTPUT_CAP = 4_000  # characters of a command's output kept in the audit


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------ sessions

    def add_session(self, **values: Any) -> None:
        now = time.time()
        with self.store.tx() as conn:
            conn.execute(sessions.insert().values(created_at=now, last_used_at=now, active_seconds=0.0, **values))

    def update_session(self, session_id: str, **values: Any) -> None:
        with self.store.tx() as conn:
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(**values))

    def session(self, session_id: str) -> dict:
        with self.store.tx() as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            raise NotFound(f"no sandbox session '{session_id}'; see `mamabear sandbox list`.")
        return dict(row._mapping)

    def resolve(self, prefix: str) -> str:
        return self.store.resolve_prefix(sessions.c.id, prefix, "sandbox session", f"no sandbox session '{prefix}'; see `mamabear sandbox list`.")

    def sessions(self, statuses: tuple[str, ...] | None = None) -> list[dict]:
        query = sa.select(sessions).order_by(sessions.c.created_at.desc())
        if statuses:
            query = query.where(sessions.c.status.in_(statuses))
        with self.store.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def pooled(self, kind: str, backend: str) -> list[dict]:
        """Live pooled sessions of a kind, most recently used first."""
        query = (
            sa.select(sessions)
            .where(sessions.c.kind == kind, sessions.c.backend == backend, sessions.c.pooled.is_(True), sessions.c.status.in_(("running", "paused")))
            .order_by(sessions.c.last_used_at.desc())
        )
        with self.store.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def link_run(self, run_id: str, session_id: str) -> None:
        with self.store.tx() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(session_id=session_id))

    # ------------------------------------------------------------ audit

    def record(
        self,
        session_id: str,
        action: str,
        target: str,
        allowed: bool,
        exit_code: int | None = None,
        duration_ms: float | None = None,
        output: str | None = None,
        context: dict | None = None,
        image_bytes: int | None = None,
        thumbnail: str | None = None,
    ) -> None:
        if output is not None and len(output) > OUTPUT_CAP:
            output = output[:OUTPUT_CAP] + f"\n[... {len(output) - OUTPUT_CAP} more characters not kept]"
        now = time.time()
        with self.store.tx() as conn:
            conn.execute(
                sandbox_actions.insert().values(
                    session_id=session_id,
                    action=action,
                    target=target,
                    allowed=allowed,
                    exit_code=exit_code,
                    duration_ms=duration_ms,
                    output=output,
                    created_at=now,
                    image_bytes=image_bytes,
                    thumbnail=thumbnail,
                    **(context or {}),
                )
            )
            conn.execute(sessions.update().where(sessions.c.id == session_id).values(last_used_at=now))

    def images(self, run_id: str) -> tuple[int, int]:
        """Screenshots a run has shown its model so far, over all its attempts: how many, and their bytes."""
        query = sa.select(sa.func.count(sandbox_actions.c.image_bytes), sa.func.coalesce(sa.func.sum(sandbox_actions.c.image_bytes), 0))
        with self.store.tx() as conn:
            count, size = conn.execute(query.where(sandbox_actions.c.run_id == run_id, sandbox_actions.c.image_bytes.is_not(None))).one()
        return int(count), int(size)

    def actions(self, run_id: str | None = None, session_id: str | None = None) -> list[dict]:
        query = sa.select(sandbox_actions).order_by(sandbox_actions.c.id)
        if run_id is not None:
            query = query.where(sandbox_actions.c.run_id == run_id)
        if session_id is not None:
            query = query.where(sandbox_actions.c.session_id == session_id)
        with self.store.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # ------------------------------------------------------------ billed time

    def bill(self, session_id: str, run_id: str | None, seconds: float, usd_per_hour: float) -> None:
        with self.store.tx() as conn:
            conn.execute(
                sandbox_usage.insert().values(
                    session_id=session_id, run_id=run_id, seconds=seconds, cost_usd=seconds / 3600 * usd_per_hour, ended_at=time.time()
                )
            )

    def usage(self, run_id: str) -> list[dict]:
        query = (
            sa.select(
                sandbox_usage.c.session_id, sa.func.sum(sandbox_usage.c.seconds).label("seconds"), sa.func.sum(sandbox_usage.c.cost_usd).label("cost_usd")
            )
            .where(sandbox_usage.c.run_id == run_id)
            .group_by(sandbox_usage.c.session_id)
        )
        with self.store.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
