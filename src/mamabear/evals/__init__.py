"""Evals: case files, checks, runs measured and stored, baselines."""
