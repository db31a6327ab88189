"""`mamabear workers`: who is up, on which queues, and what each runs (Celery's own remote control)."""

from __future__ import annotations

from typing import Any

from mamabear.workers.app import connected


def workers(env: Any, store: Any, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    app = connected(env)
    inspect = app.control.inspect(timeout=timeout_s)
    stats = inspect.stats() or {}
    active = inspect.active() or {}
    queues = inspect.active_queues() or {}
    found = []
    for name in sorted(set(stats) | set(active)):
        runs = [task["args"][0] for task in active.get(name, []) if task.get("args")]
        found.append(
            {
                "name": name,
                "queues": sorted(q["name"] for q in queues.get(name, [])),
                "concurrency": (stats.get(name, {}).get("pool") or {}).get("max-concurrency"),
                "pid": stats.get(name, {}).get("pid"),
                "runs": [{"id": run_id, "status": str(store.run(run_id).status)} for run_id in runs],
            }
        )
    return found


def ping_here(env: Any, timeout_s: float = 5.0) -> list[str]:
    """The workers on this machine that answer (a container's probe: its own worker)."""
    import socket

    app = connected(env)
    host = socket.gethostname()
    return sorted(name for reply in app.control.ping(timeout=timeout_s) or [] for name in reply if name.endswith(f"@{host}"))
