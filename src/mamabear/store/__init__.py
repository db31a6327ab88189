"""The run store: its schema and migrations, the Store, the sandbox ledger, a run as one report, stats and liveness."""
