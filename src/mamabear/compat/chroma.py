"""Chroma's internals: the Rust bindings behind a local client, restarted to reload what other processes wrote."""

from __future__ import annotations

from typing import Any

from mamabear.compat.versions import moved


def restart_local(client: Any) -> None:
    """Drop a local client's in-memory state (HNSW indexes); the next query reads the files again."""
    server = client._server
    server.stop()
    server.start()


def problems() -> list[str]:
    try:
        import chromadb
        from chromadb.config import Settings

        client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False, allow_reset=True))
    except Exception as exc:  # noqa: BLE001 - any failure to make a client is the finding
        return [moved("chromadb", "an ephemeral client", f"cannot be made ({exc})")]
    server = getattr(client, "_server", None)
    if not (callable(getattr(server, "stop", None)) and callable(getattr(server, "start", None))):
        return [moved("chromadb", "Client._server with stop() and start()", "is gone or has changed")]
    return []
