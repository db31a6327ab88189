"""Missions: an open goal made into a typed plan that the specialists carry out, checked step by step.

This layer sits between the CLI and the run engine: it decides what to run next (plan, steps,
checks, re-plans, stuck detection) and leaves running it to the engine. So far: its settings
(``config``), its plan (``plan``: the typed plan, its problems, its order, PLAN.md) and its course
(``course``: what to do next, from what happened so far; its checkpoint), an item's checks
(``checks``) and what each step asks (``prompts``).
"""
