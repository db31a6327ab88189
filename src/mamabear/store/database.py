"""The run store: every run, task, LLM call, tool call and event, in SQL.

SQLite at ``$MAMABEAR_HOME/mamabear.db`` by default (WAL, so several processes can
write at once), any SQLAlchemy URL (PostgreSQL for teams) by ``MAMABEAR_DATABASE_URL``.
The schema evolves through small numbered migrations, recorded in ``_migrations``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mamabear.errors import NotFound, StorageError, UsageError, storage_fault
from mamabear.status import Status
from mamabear.store.outage import every_call_waits
from mamabear.store.rows import RunRow, TaskRow

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("crew", sa.String(200), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("process", sa.String(32)),
    sa.Column("inputs", sa.JSON),
    sa.Column("plan", sa.JSON),
    sa.Column("output", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("options", sa.JSON),  # the flags a resume reuses: model, base_url, limits (never a key)
    sa.Column("host", sa.String(200)),
    sa.Column("attempt", sa.Integer),  # the attempt running now or last
    sa.Column("cancel_requested", sa.Boolean),
    sa.Column("session_id", sa.String(32)),  # the sandbox session the run works in, once it has one
    sa.Column("heartbeat_at", sa.Float),  # when its running process last said it is alive (see store/liveness.py)
    sa.Column("worker", sa.String(200)),  # the worker (`mamabear worker`) that runs it now or ran it last
    sa.Column("parent_id", sa.String(32)),  # the run it was forked from (`runs fork`)
    sa.Column("forked_from", sa.String(200)),  # the parent's task it started from
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # run | resume
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(200)),
    sa.Column("options", sa.JSON),
    sa.Column("checkpoint", sa.Text),  # the checkpoint it started from, if any
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("task", sa.String(200), nullable=False),
    sa.Column("agent", sa.String(200)),
    sa.Column("model", sa.String(200)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("output", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("worker", sa.String(200)),  # a mission step run by a worker other than its run's (see mission/fanout.py)
    sa.Column("heartbeat_at", sa.Float),  # when that worker last said the step goes on
)

llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("task_position", sa.Integer),
    sa.Column("agent", sa.String(200)),
    sa.Column("model", sa.String(200)),
    sa.Column("tokens_in", sa.Integer, nullable=False, default=0),
    sa.Column("tokens_out", sa.Integer, nullable=False, default=0),
    sa.Column("cost_usd", sa.Float, nullable=False, default=0.0),
    sa.Column("latency_ms", sa.Float),
    sa.Column("outcome", sa.String(32), nullable=False),  # running | ok | error
    sa.Column("finish_reason", sa.String(64)),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("attempt", sa.Integer),
    sa.Column("cache_hit", sa.Boolean),  # answered from the response cache: no request, no cost
    sa.Column("saved_usd", sa.Float),  # what a cache hit would have cost
    sa.Column("cached_tokens", sa.Integer),  # input tokens the provider served from its prompt cache
    sa.Column("unpriced", sa.Boolean),  # answered by a model with no known price: its cost is unknown, not $0
)

tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("task_position", sa.Integer),
    sa.Column("agent", sa.String(200)),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("arguments", sa.Text),
    sa.Column("output", sa.Text),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("duration_ms", sa.Float),
    sa.Column("attempt", sa.Integer),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("task_position", sa.Integer),
    sa.Column("agent", sa.String(200)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("data", sa.JSON),
    sa.Column("attempt", sa.Integer),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("backend", sa.String(32), nullable=False),  # local | scrapybara
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running | paused | stopped | lost
    sa.Column("remote_id", sa.String(200)),  # the cloud instance
    sa.Column("workdir", sa.Text, nullable=False),
    sa.Column("pooled", sa.Boolean, nullable=False, default=False),
    sa.Column("run_id", sa.String(32)),  # the run that created it, if one did
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float, nullable=False),
    sa.Column("active_since", sa.Float),  # running since (billed time); None while paused or stopped
    sa.Column("active_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("saved_at", sa.Float),  # when its workspace was last saved (cloud)
    sa.Column("error", sa.Text),
)

sandbox_actions = sa.Table(
    "sandbox_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(32), index=True),  # None: `mamabear sandbox exec`
    sa.Column("attempt", sa.Integer),
    sa.Column("task_position", sa.Integer),
    sa.Column("agent", sa.String(200)),
    sa.Column("action", sa.String(32), nullable=False),  # bash | view | create | str_replace | insert | navigate | screenshot | setup
    sa.Column("target", sa.Text, nullable=False),  # the command, path or URL
    sa.Column("allowed", sa.Boolean, nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("duration_ms", sa.Float),
    sa.Column("output", sa.Text),  # truncated and redacted
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("image_bytes", sa.Integer),  # a screenshot shown to the model: its size (the run's image budget)
    sa.Column("thumbnail", sa.Text),  # and where its thumbnail is
)

sandbox_usage = sa.Table(
    "sandbox_usage",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("run_id", sa.String(32), index=True),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=False),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("name", sa.String(300), primary_key=True),  # its path under the run's checkpoint folder (branch/file.json)
    sa.Column("body", sa.Text, nullable=False),  # CrewAI's checkpoint JSON, redacted and without code, as the file holds it
    sa.Column("created_at", sa.Float, nullable=False),
)

eval_results = sa.Table(
    "eval_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("eval", sa.String(200), nullable=False),  # the case file's name (evals/NAME.yaml)
    sa.Column("crew", sa.String(200), nullable=False),
    sa.Column("case_name", sa.String(200), nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id")),
    sa.Column("passed", sa.Boolean, nullable=False),  # every check passed
    sa.Column("score", sa.Float),  # the judged checks' mean score (1-10), when it has any
    sa.Column("cost_usd", sa.Float, nullable=False),  # the run's and the judge's
    sa.Column("seconds", sa.Float),
    sa.Column("checks", sa.JSON),  # each check: what, passed, score, reason
    sa.Column("created_at", sa.Float, nullable=False),
)

migrations_table = sa.Table(
    "_migrations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)


def m001_initial(conn: Connection) -> None:
    for table in (runs, tasks, llm_calls, tool_calls, events):
        table.create(conn, checkfirst=True)


def m002_attempts(conn: Connection) -> None:
    """Resumable runs: each start or resume is an attempt; calls and events say which."""
    attempts.create(conn, checkfirst=True)
    for table, names in (
        (runs, ("options", "host", "attempt", "cancel_requested")),
        (llm_calls, ("attempt",)),
        (tool_calls, ("attempt",)),
        (events, ("attempt",)),
    ):
        _add_columns(conn, table, names)


def _add_columns(conn: Connection, table: sa.Table, names: tuple[str, ...]) -> None:
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    for name in names:
        if name not in present:  # m001 on a new database already made them from the current tables
            column = table.c[name]
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column.type.compile(dialect=conn.dialect)}"))


def m003_sandbox(conn: Connection) -> None:
    """Sandbox sessions, every command and edit made in them, and the instance time runs are billed."""
    for table in (sessions, sandbox_actions, sandbox_usage):
        table.create(conn, checkfirst=True)
    _add_columns(conn, runs, ("session_id",))


def m004_cache(conn: Connection) -> None:
    """Response-cache hits and provider prompt caching, per LLM call."""
    _add_columns(conn, llm_calls, ("cache_hit", "saved_usd", "cached_tokens"))


def m005_heartbeat(conn: Connection) -> None:
    """A running run's heartbeat, so a run on a machine that died can be told from one still running there, and the
    worker that holds it."""
    _add_columns(conn, runs, ("heartbeat_at", "worker"))


def m006_checkpoints(conn: Connection) -> None:
    """Checkpoints in the store too, so a run continued on another machine restores its own."""
    checkpoints.create(conn, checkfirst=True)


def _holds(conn: Connection, run_id: str, attempt: int) -> bool:
    """Whether attempt ``attempt`` holds the run now: it is the run's, and the run is running."""
    held = sa.select(runs.c.id).where(runs.c.id == run_id, runs.c.attempt == attempt, runs.c.status == Status.RUNNING)
    return conn.execute(held).first() is not None


def m007_step_workers(conn: Connection) -> None:
    """A mission's steps on several workers at once: which worker holds each step, and its heartbeat."""
    _add_columns(conn, tasks, ("worker", "heartbeat_at"))


def m008_eval_results(conn: Connection) -> None:
    """Eval results: one row per case and repeat, with its run and every check's verdict."""
    eval_results.create(conn, checkfirst=True)


def m009_forks(conn: Connection) -> None:
    """Forks: a run started from another's task, its earlier tasks' outputs kept."""
    _add_columns(conn, runs, ("parent_id", "forked_from"))


def m010_screenshots(conn: Connection) -> None:
    """Screenshots in the sandbox audit: their bytes and thumbnails."""
    _add_columns(conn, sandbox_actions, ("image_bytes", "thumbnail"))


def m011_unpriced(conn: Connection) -> None:
    """Calls of a model with no known price, so their cost is shown as unknown rather than $0."""
    _add_columns(conn, llm_calls, ("unpriced",))


MIGRATIONS: list[Callable[[Connection], None]] = [
    m001_initial,
    m002_attempts,
    m003_sandbox,
    m004_cache,
    m005_heartbeat,
    m006_checkpoints,
    m007_step_workers,
    m008_eval_results,
    m009_forks,
    m010_screenshots,
    m011_unpriced,
]

TOKEN_SUMS = (
    sa.func.coalesce(sa.func.sum(llm_calls.c.tokens_in), 0).label("tokens_in"),
    sa.func.coalesce(sa.func.sum(llm_calls.c.tokens_out), 0).label("tokens_out"),
    sa.func.coalesce(sa.func.sum(llm_calls.c.cost_usd), 0.0).label("cost_usd"),
    sa.func.count(llm_calls.c.id).label("llm_calls"),
    sa.func.coalesce(sa.func.sum(sa.case((llm_calls.c.unpriced.is_(True), 1), else_=0)), 0).label("unpriced_calls"),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@every_call_waits
class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.back_at = 0.0  # when the store last answered again after not answering (store/outage.py)

    @classmethod
    def open(cls, url: str) -> Store:
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise UsageError(f"MAMABEAR_DATABASE_URL '{url}' is not a database URL; use sqlite:///PATH or postgresql://...") from exc
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot make the run store's folder {folder} ({exc.strerror}); point MAMABEAR_HOME at a directory you can write to.") from exc
        try:
            engine = sa.create_engine(parsed, future=True, pool_pre_ping=True)
        except (ImportError, sa.exc.ArgumentError) as exc:
            raise UsageError(f"cannot use database '{parsed.render_as_string(hide_password=True)}': {exc}.") from exc
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        where = parsed.render_as_string(hide_password=True)
        try:
            store.migrate()
        except sa.exc.OperationalError as exc:
            raise UsageError(f"cannot open the run store at {where}: {exc.orig}.") from exc
        except sa.exc.DatabaseError as exc:  # "file is not a database": damaged; it is left as it is, for recovery
            raise UsageError(
                f"the run store at {where} is damaged ({exc.orig}); move the file aside to start a new one, or recover it with `sqlite3 FILE .recover`."
            ) from exc
        return store

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A transaction; a disk that cannot take the write (full, read-only, failing) is a StorageError naming the store."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            fault = storage_fault(exc)
            if fault is None:
                raise
            where = self.engine.url.render_as_string(hide_password=True)
            raise StorageError(f"cannot write to the run store at {where} ({fault}); free space or make it writable (what is stored is kept).") from exc

    def migrate(self) -> None:
        """Apply pending migrations. Two processes opening a new store at once may race on the DDL
        (SQLite answers "database is locked" at once when both upgrade a read to a write); every
        migration is idempotent, so the loser simply tries again and finds the work done."""
        import tenacity

        def raced(exc: BaseException) -> bool:
            lost = ("already exists", "duplicate", "unique", "database is locked")
            ddl = isinstance(exc, (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError))
            return ddl and any(w in str(getattr(exc, "orig", exc)).lower() for w in lost)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(raced), stop=tenacity.stop_after_attempt(8), wait=tenacity.wait_incrementing(0.05, 0.05), reraise=True
        )
        retrying(self._migrate_once)

    def _migrate_once(self) -> None:
        with self.tx() as conn:
            migrations_table.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(migrations_table.c.name)).scalars())
            for migration in MIGRATIONS:
                if migration.__name__ not in done:
                    migration(conn)
                    conn.execute(migrations_table.insert().values(name=migration.__name__, applied_at=time.time()))

    # ------------------------------------------------------------ writes

    def create_run(
        self,
        run_id: str,
        crew: str,
        process: str,
        inputs: dict,
        plan: dict,
        task_rows: list[dict],
        options: dict | None = None,
        created_at: float | None = None,
        pid: int | None = None,
        host: str | None = None,
        status: Status = Status.RUNNING,
    ) -> None:
        """``pid``/``host``: the process that owns the run from its first moment, so a kill during start-up is noticed.
        ``status``: queued for a run a worker is to start (``--queue``)."""
        with self.tx() as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    crew=crew,
                    status=status,
                    process=process,
                    inputs=inputs,
                    plan=plan,
                    pid=pid,
                    host=host,
                    options=options or {},
                    created_at=created_at or time.time(),
                    attempt=0,
                    cancel_requested=False,
                )
            )
            for row in task_rows:
                conn.execute(tasks.insert().values(run_id=run_id, status=Status.PENDING, **row))

    def start_attempt(
        self,
        run_id: str,
        kind: str,
        pid: int,
        host: str,
        options: dict,
        checkpoint: str | None,
        started_at: float | None = None,
        worker: str | None = None,
        expected: str | None = None,
    ) -> int:
        """Open the next attempt of a run and mark the run running under this process. The run is claimed in the same
        transaction, only if it is as its caller saw it (``expected``: the status a resume checked) or is this
        process's own new run: a run another process took meanwhile (two workers given the same run), or cancelled
        meanwhile, is a UsageError and is not started."""
        with self.tx() as conn:
            own_new = sa.and_(runs.c.status == Status.RUNNING, sa.or_(runs.c.pid.is_(None), sa.and_(runs.c.pid == pid, runs.c.host == host)))
            as_seen = runs.c.status == expected if expected is not None else sa.false()
            claimed = conn.execute(
                runs.update().where(runs.c.id == run_id, sa.or_(own_new, as_seen)).values(status=Status.RUNNING, pid=pid, host=host)
            ).rowcount
            if not claimed:
                now = conn.execute(sa.select(runs.c.status, runs.c.host, runs.c.pid).where(runs.c.id == run_id)).first()
                if now is not None and now.status == Status.RUNNING:
                    raise UsageError(f"run {run_id} is already running on {now.host} (pid {now.pid}); it is not started twice.")
                raise UsageError(f"run {run_id} is {now.status if now else 'gone'} now (it was {expected}); it is not started.")
            # Calls the last attempt's process never saw finish (it was killed) did not finish.
            conn.execute(
                llm_calls.update()
                .where(llm_calls.c.run_id == run_id, llm_calls.c.outcome == "running")
                .values(outcome="error", error="the process ended during the call")
            )
            number = (conn.execute(sa.select(sa.func.max(attempts.c.number)).where(attempts.c.run_id == run_id)).scalar() or 0) + 1
            conn.execute(
                attempts.insert().values(
                    run_id=run_id,
                    number=number,
                    kind=kind,
                    status=Status.RUNNING,
                    pid=pid,
                    host=host,
                    options=options,
                    checkpoint=checkpoint,
                    started_at=started_at or time.time(),
                )
            )
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=Status.RUNNING,
                    attempt=number,
                    pid=pid,
                    host=host,
                    options=options,
                    error=None,
                    finished_at=None,
                    cancel_requested=False,
                    heartbeat_at=time.time(),
                    worker=worker,
                )
            )
        return number

    def finish_attempt(self, run_id: str, number: int, status: str, error: str | None, output: str | None = None, ended_at: float | None = None) -> None:
        """The attempt and its run end; a task row still marked running (its process was killed) ends with them, stopped.
        ``ended_at``: when the attempt was last known alive (a lost one's last heartbeat), if not now."""
        now = time.time()
        stopped = Status.INTERRUPTED if status in (Status.COMPLETED, Status.RUNNING) else status
        with self.tx() as conn:
            conn.execute(
                attempts.update()
                .where(attempts.c.run_id == run_id, attempts.c.number == number)
                .values(status=status, error=error, finished_at=ended_at or now)
            )
            owner = runs.c.attempt == number  # a newer attempt (another worker's) owns the run now: leave it and its tasks alone
            if conn.execute(runs.update().where(runs.c.id == run_id, owner).values(status=status, error=error, output=output, finished_at=now)).rowcount:
                conn.execute(tasks.update().where(tasks.c.run_id == run_id, tasks.c.status == Status.RUNNING).values(status=stopped, finished_at=now))

    def request_cancel(self, run_id: str) -> None:
        self.update_run(run_id, cancel_requested=True)

    def cancel_queued(self, run_id: str) -> bool:
        """A queued run is cancelled before any worker starts it; False when a worker took it meanwhile."""
        return self.set_status_if(run_id, Status.QUEUED, Status.CANCELLED, "cancelled while it waited for a worker")

    def save_checkpoint(self, run_id: str, name: str, body: str, keep: int) -> None:
        """One of the run's checkpoints (the newest ``keep`` are kept)."""
        with self.tx() as conn:
            conn.execute(checkpoints.delete().where(checkpoints.c.run_id == run_id, checkpoints.c.name == name))
            conn.execute(checkpoints.insert().values(run_id=run_id, name=name, body=body, created_at=time.time()))
            old = sa.select(checkpoints.c.name).where(checkpoints.c.run_id == run_id).order_by(checkpoints.c.created_at.desc()).offset(keep)
            stale = [row.name for row in conn.execute(old)]
            if stale:
                conn.execute(checkpoints.delete().where(checkpoints.c.run_id == run_id, checkpoints.c.name.in_(stale)))

    def checkpoint_bodies(self, run_id: str) -> list[tuple[str, str]]:
        """The run's checkpoints in the store, newest first: (name, body)."""
        with self.tx() as conn:
            rows = conn.execute(
                sa.select(checkpoints.c.name, checkpoints.c.body).where(checkpoints.c.run_id == run_id).order_by(checkpoints.c.created_at.desc())
            )
            return [(row.name, row.body) for row in rows]

    def drop_checkpoints(self, run_id: str) -> None:
        with self.tx() as conn:
            conn.execute(checkpoints.delete().where(checkpoints.c.run_id == run_id))

    def requeue(self, run_id: str) -> bool:
        """An interrupted run goes back to the queue; False when someone else did it first (or it is no longer interrupted)."""
        return self.queue_again(run_id, Status.INTERRUPTED)

    def beat(self, run_id: str, attempt: int) -> bool:
        """The running attempt's heartbeat; False when the attempt no longer owns the run (it was taken as lost, and
        another process has it or is to have it)."""
        with self.tx() as conn:
            return bool(
                conn.execute(
                    runs.update().where(runs.c.id == run_id, runs.c.attempt == attempt, runs.c.status == Status.RUNNING).values(heartbeat_at=time.time())
                ).rowcount
            )

    def mark_taken(self, run_id: str, worker: str) -> bool:
        """A worker took a queued run's message: noted (its heartbeat is when), so a run taken and never started
        (its worker lost at that moment) is sent again (``resend_taken``); False when it is no longer queued."""
        with self.tx() as conn:
            taken = runs.update().where(runs.c.id == run_id, runs.c.status == Status.QUEUED).values(heartbeat_at=time.time(), worker=worker)
            return bool(conn.execute(taken).rowcount)

    def resend_taken(self, older_than: float) -> list[RunRow]:
        """Queued runs a worker took before ``older_than`` and never started: each returned once (of all callers)."""
        with self.tx() as conn:
            seen = conn.execute(sa.select(runs).where(runs.c.status == Status.QUEUED, runs.c.heartbeat_at < older_than)).fetchall()
            again = []
            for row in seen:
                mine = runs.update().where(runs.c.id == row.id, runs.c.status == Status.QUEUED, runs.c.heartbeat_at == row.heartbeat_at)
                if conn.execute(mine.values(heartbeat_at=None)).rowcount:
                    again.append(RunRow.of(dict(row._mapping)))
            return again

    def queue_again(self, run_id: str, was: str, options: dict | None = None) -> bool:
        """The run queued again (with new ``options``, if given), if it is still ``was``; its last process's heartbeat
        and pid are cleared, so it is not taken for a run a worker took and never started."""
        values: dict[str, Any] = {"status": Status.QUEUED, "heartbeat_at": None, "pid": None, "error": None}
        if options is not None:
            values["options"] = options
        with self.tx() as conn:
            return bool(conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == was).values(**values)).rowcount)

    def set_status_if(self, run_id: str, was: str, status: str, error: str | None = None) -> bool:
        """The run's status, changed only if it is ``was`` (one of several writers wins)."""
        with self.tx() as conn:
            changed = runs.update().where(runs.c.id == run_id, runs.c.status == was).values(status=status, error=error, finished_at=time.time())
            return bool(conn.execute(changed).rowcount)

    def runs_with_status(self, status: str, limit: int = 1000) -> list[RunRow]:
        """Runs in one status, without their usage (light: the sweeper asks every few seconds)."""
        with self.tx() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.status == status).order_by(runs.c.created_at).limit(limit)).fetchall()
        return [RunRow.of(dict(r._mapping)) for r in rows]

    def cancel_requested(self, run_id: str) -> bool:
        with self.tx() as conn:
            return bool(conn.execute(sa.select(runs.c.cancel_requested).where(runs.c.id == run_id)).scalar())

    def update_run(self, run_id: str, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(**values))

    def add_task(self, run_id: str, position: int, task: str, agent: str | None, model: str | None) -> None:
        """A task decided while the run goes (a mission's step), pending."""
        with self.tx() as conn:
            conn.execute(tasks.insert().values(run_id=run_id, position=position, task=task, agent=agent, model=model, status=Status.PENDING))

    def claim_step(self, run_id: str, position: int, worker: str, attempt: int | None = None) -> bool:
        """A pending step taken by ``worker`` (one of the run's own attempt and the workers it was sent to wins); with
        ``attempt``, only while that attempt of the run holds it (a step sent by an attempt since lost is left alone)."""
        with self.tx() as conn:
            if attempt is not None and not _holds(conn, run_id, attempt):
                return False
            mine = tasks.update().where(tasks.c.run_id == run_id, tasks.c.position == position, tasks.c.status == Status.PENDING)
            return bool(conn.execute(mine.values(status=Status.RUNNING, worker=worker, heartbeat_at=time.time(), started_at=time.time())).rowcount)

    def beat_step(self, run_id: str, position: int, worker: str, attempt: int | None = None) -> bool:
        """The heartbeat of a step a worker runs (for attempt ``attempt`` of its run, when given); False when that
        attempt no longer holds the run (it ended, or was lost and handed on) or the step is no longer this worker's:
        the step stops."""
        with self.tx() as conn:
            if attempt is not None and not _holds(conn, run_id, attempt):
                return False
            step = tasks.update().where(tasks.c.run_id == run_id, tasks.c.position == position, tasks.c.worker == worker, tasks.c.status == Status.RUNNING)
            return bool(conn.execute(step.values(heartbeat_at=time.time())).rowcount)

    def set_task_status_if(self, run_id: str, position: int, was: str, status: str, error: str | None = None) -> bool:
        """A task's status, changed only if it is ``was`` (a lost step, settled by whoever notices first)."""
        with self.tx() as conn:
            changed = tasks.update().where(tasks.c.run_id == run_id, tasks.c.position == position, tasks.c.status == was)
            return bool(conn.execute(changed.values(status=status, error=error, finished_at=time.time())).rowcount)

    def add_eval_result(self, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(eval_results.insert().values(created_at=time.time(), **values))

    def eval_results(self, eval_name: str | None = None, since: float = 0.0) -> list[dict]:
        """Eval results, oldest first (of one eval, when named)."""
        query = sa.select(eval_results).where(eval_results.c.created_at >= since).order_by(eval_results.c.id)
        if eval_name is not None:
            query = query.where(eval_results.c.eval == eval_name)
        with self.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def keep_outputs(self, run_id: str, rows: list[TaskRow]) -> None:
        """A fork's earlier tasks, completed with its parent's outputs (no call of theirs is counted again)."""
        with self.tx() as conn:
            for row in rows:
                done = tasks.update().where(tasks.c.run_id == run_id, tasks.c.position == row.position)
                conn.execute(done.values(status=Status.COMPLETED, output=row.output, started_at=row.started_at, finished_at=row.finished_at))

    def forks(self, run_id: str) -> list[RunRow]:
        with self.tx() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.parent_id == run_id).order_by(runs.c.created_at)).fetchall()
        return [RunRow.of(dict(r._mapping)) for r in rows]

    def task(self, run_id: str, position: int) -> TaskRow | None:
        """One task's row with its usage (what a step run elsewhere spent)."""
        return next((row for row in self.tasks(run_id) if row.position == position), None)

    def update_task(self, run_id: str, position: int, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(tasks.update().where(tasks.c.run_id == run_id, tasks.c.position == position).values(**values))

    def save_llm_call(self, call_id: str, run_id: str, **values: Any) -> None:
        """Insert or update one call; start and end events may arrive in either order."""
        with self.tx() as conn:
            updated = conn.execute(llm_calls.update().where(llm_calls.c.id == call_id).values(**values)).rowcount
            if not updated:
                conn.execute(llm_calls.insert().values(id=call_id, run_id=run_id, **{"outcome": "running", **values}))

    def add_tool_call(self, run_id: str, **values: Any) -> None:
        with self.tx() as conn:
            conn.execute(tool_calls.insert().values(run_id=run_id, **values))

    def add_event(
        self,
        run_id: str,
        kind: str,
        message: str,
        task_position: int | None = None,
        agent: str | None = None,
        data: dict | None = None,
        ts: float | None = None,
        attempt: int | None = None,
        replace: bool = False,
    ) -> None:
        """``replace``: the event supersedes the run's earlier ones of its kind, which go in the same transaction."""
        with self.tx() as conn:
            if replace:
                conn.execute(events.delete().where(events.c.run_id == run_id, events.c.kind == kind))
            conn.execute(
                events.insert().values(
                    run_id=run_id,
                    ts=ts or time.time(),
                    kind=kind,
                    message=message,
                    task_position=task_position,
                    agent=agent,
                    data=data,
                    attempt=attempt,
                )
            )

    # ------------------------------------------------------------ reads

    def resolve_run_id(self, prefix: str) -> str:
        return self.resolve_prefix(runs.c.id, prefix, "run", f"no run with id '{prefix}'; see `mamabear runs list`.")

    def resolve_prefix(self, column: sa.Column, prefix: str, noun: str, missing: str) -> str:
        """The one id in ``column`` that starts with ``prefix``; otherwise the ``missing`` sentence, or that it is ambiguous."""
        with self.tx() as conn:
            ids = conn.execute(sa.select(column).where(column.startswith(prefix, autoescape=True)).limit(2)).scalars().all()
        if not ids:
            raise NotFound(missing)
        if len(ids) > 1:
            raise UsageError(f"{noun} id '{prefix}' is ambiguous; give more characters.")
        return ids[0]

    def list_runs(self, limit: int = 20, status: str | None = None, crew: str | None = None) -> list[RunRow]:
        usage = sa.select(llm_calls.c.run_id, *TOKEN_SUMS).group_by(llm_calls.c.run_id).subquery()
        took = sa.select(attempts.c.run_id, sa.func.sum(attempts.c.finished_at - attempts.c.started_at).label("seconds")).group_by(attempts.c.run_id).subquery()
        hours = sa.select(sandbox_usage.c.run_id, sa.func.sum(sandbox_usage.c.cost_usd).label("sandbox_usd")).group_by(sandbox_usage.c.run_id).subquery()
        query = (
            sa.select(
                runs,
                usage.c.tokens_in,
                usage.c.tokens_out,
                (sa.func.coalesce(usage.c.cost_usd, 0.0) + sa.func.coalesce(hours.c.sandbox_usd, 0.0)).label("cost_usd"),
                usage.c.llm_calls,
                usage.c.unpriced_calls,
                took.c.seconds,
            )
            .outerjoin(usage, usage.c.run_id == runs.c.id)
            .outerjoin(took, took.c.run_id == runs.c.id)
            .outerjoin(hours, hours.c.run_id == runs.c.id)
            .order_by(runs.c.created_at.desc())
            .limit(limit)
        )
        if status:
            query = query.where(runs.c.status == status)
        if crew:
            query = query.where(runs.c.crew == crew)
        with self.tx() as conn:
            return [RunRow.of(dict(r._mapping)) for r in conn.execute(query)]

    def has_run(self, run_id: str) -> bool:
        with self.tx() as conn:
            return conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is not None

    def run(self, run_id: str) -> RunRow:
        with self.tx() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run with id '{run_id}'; see `mamabear runs list`.")
        return RunRow.of(dict(row._mapping))

    def tasks(self, run_id: str) -> list[TaskRow]:
        usage = sa.select(llm_calls.c.task_position, *TOKEN_SUMS).where(llm_calls.c.run_id == run_id).group_by(llm_calls.c.task_position).subquery()
        query = (
            sa.select(tasks, usage.c.tokens_in, usage.c.tokens_out, usage.c.cost_usd, usage.c.llm_calls, usage.c.unpriced_calls)
            .outerjoin(usage, usage.c.task_position == tasks.c.position)
            .where(tasks.c.run_id == run_id)
            .order_by(tasks.c.position)
        )
        with self.tx() as conn:
            return [TaskRow.of(dict(r._mapping)) for r in conn.execute(query)]

    def llm_calls(self, run_id: str) -> list[dict]:
        with self.tx() as conn:
            query = sa.select(llm_calls).where(llm_calls.c.run_id == run_id).order_by(llm_calls.c.started_at)
            return [dict(r._mapping) for r in conn.execute(query)]

    def tool_calls(self, run_id: str) -> list[dict]:
        with self.tx() as conn:
            query = sa.select(tool_calls).where(tool_calls.c.run_id == run_id).order_by(tool_calls.c.id)
            return [dict(r._mapping) for r in conn.execute(query)]

    def attempts(self, run_id: str) -> list[dict]:
        with self.tx() as conn:
            query = sa.select(attempts).where(attempts.c.run_id == run_id).order_by(attempts.c.number)
            return [dict(r._mapping) for r in conn.execute(query)]

    def spent(self, run_id: str) -> tuple[float, int]:
        """Dollars and tokens a run has spent so far, over all its attempts (sandbox hours included)."""
        with self.tx() as conn:
            row = conn.execute(sa.select(*TOKEN_SUMS).where(llm_calls.c.run_id == run_id)).one()
            hours = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(sandbox_usage.c.cost_usd), 0.0)).where(sandbox_usage.c.run_id == run_id)).scalar()
        return float(row.cost_usd) + float(hours or 0.0), int(row.tokens_in) + int(row.tokens_out)

    def last_event(self, run_id: str, kind: str) -> dict | None:
        """The run's latest event of this kind (a mission's saved course), without reading the earlier ones."""
        query = sa.select(events).where(events.c.run_id == run_id, events.c.kind == kind).order_by(events.c.id.desc()).limit(1)
        with self.tx() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row is not None else None

    def events(self, run_id: str, after_id: int = 0, kinds: tuple[str, ...] | None = None) -> list[dict]:
        query = sa.select(events).where(events.c.run_id == run_id, events.c.id > after_id).order_by(events.c.id)
        if kinds:
            query = query.where(events.c.kind.in_(kinds))
        with self.tx() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
