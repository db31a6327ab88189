"""mamabear worker | mamabear workers"""

from __future__ import annotations

from typing import Optional

import typer

from mamabear.cli.options import JSON
from mamabear.cli.output import console, emit_json, table


def worker(
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="How many runs it works on at once."),
    queues: str = typer.Option("default", "--queues", "-Q", metavar="NAMES", help="The queues it takes runs from, comma-separated."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Its name (NAME@host); default mamabear@host."),
) -> None:
    """Work on queued runs (`run --queue`) as a Celery worker on MAMABEAR_BROKER_URL, until stopped."""
    from mamabear.engine.services import Services
    from mamabear.workers.serve import serve

    serve(Services(), name, concurrency, [q.strip() for q in queues.split(",") if q.strip()] or ["default"])


def workers(
    ping: bool = typer.Option(False, "--ping", help="Exit 0 if a worker on this machine answers, 1 if none does (a container's probe)."),
    json_out: bool = JSON,
) -> None:
    """The workers that are up: their queues, and the runs each works on now."""
    from mamabear.engine.services import Services
    from mamabear.workers.inventory import ping_here
    from mamabear.workers.inventory import workers as listed

    ws = Services()
    if ping:
        answered = ping_here(ws.settings.env)
        console(stderr=not answered).print(f"up: {', '.join(answered)}" if answered else "no worker on this machine answered.")
        raise typer.Exit(0 if answered else 1)
    found = listed(ws.settings.env, ws.store)
    if json_out:
        emit_json(found)
        return
    if not found:
        console(stderr=True).print("no worker is up; start one with `mamabear worker`.")
        return
    rows = table("worker", "queues", "concurrency", "runs")
    for w in found:
        rows.add_row(w["name"], ",".join(w["queues"]), str(w["concurrency"] or "-"), " ".join(f"{r['id']} ({r['status']})" for r in w["runs"]) or "-")
    console().print(rows)
