"""Runs: the plan, building the crew, the attempt (kick-off, stops, settling), the tracker, checkpoints, the sandbox link,
detached runs, health checks, and the services a command uses."""
