"""Past one machine: `mamabear worker` is a Celery worker on a Redis broker; `--queue` sends runs to it.

The run store (PostgreSQL, shared by every worker) is the truth about each run; the broker only carries "start or
continue run ID". A worker starts each run as a `mamabear resume` process of its own, which claims the run in the
store, beats while it runs, and is resumed by another worker when its heartbeat stops (see sweeper.py).
"""
