"""Missions: an open goal made into a typed plan that the specialists carry out, checked step by step.

This layer sits between the CLI and the run engine: it decides what to run next (plan, steps,
checks, re-plans, stuck detection) and leaves running it to the engine. So far: the mission's
settings (``config``) and its plan (``plan``: the typed plan, its checks, its order, PLAN.md).
"""
