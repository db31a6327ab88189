"""Runs: the plan, building the crew, the attempt (kick-off, stops, settling), the tracker, checkpoints, the sandbox link,
detached runs, health checks, and the services a command uses.

A run is one id with one or more attempts: the first ``run`` and every ``resume``. ``attempt.Attempt``
records, wires and runs one; ``attempt_end`` settles how it ended, exactly once; ``resume`` reads
back what a resume needs.
"""
