"""What kombu's Redis transport keeps where: each queue is a list per priority step, and a message delivered and not
yet acked sits in the ``unacked`` hash. Read here to count what waits, and to see whether a run's message still exists
(a Redis without persistence that restarted has lost it)."""

from __future__ import annotations

from typing import Any

STEPS = ("", *(f"\x06\x16{p}" for p in (3, 6, 9)))  # kombu's default priority steps 0 (the queue's own name), 3, 6, 9
UNACKED = "unacked"


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def queue_depth(url: str, queues: list[str]) -> dict[str, int]:
    """Runs waiting in each queue."""
    client = _client(url)
    return {q: sum(int(client.llen(f"{q}{step}")) for step in STEPS) for q in queues}


def holds(url: str, queues: list[str], run_id: str) -> bool:
    """Whether a message naming ``run_id`` waits in one of ``queues`` or was delivered and not acked."""
    client = _client(url)
    marker = run_id.encode()
    for queue in queues:
        for step in STEPS:
            if any(marker in raw for raw in client.lrange(f"{queue}{step}", 0, -1)):
                return True
    return any(marker in raw for raw in client.hvals(UNACKED))
