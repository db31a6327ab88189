"""Configuration: settings (flags > env > .env > defaults), line-aware YAML, the catalog of agents, tasks and crews,
model routing, privacy (redaction), durations and limits. The lowest layer: it imports no other layer."""
