"""Observability of runs: OpenTelemetry spans and metrics, exported over OTLP, to Langfuse, and to a local JSONL file."""
