"""The mcp SDK's stdio client writes a server's stderr to the ``errlog`` it was given, defaulting to the
``sys.stderr`` of the moment ``mcp.client.stdio`` was imported. CrewAI gives none, and mamabear silences
``sys.stderr`` while a run's live view is up (a stream with no file descriptor), so the default is pointed
at a log file of mamabear's: servers' own messages never garble the terminal and never fail the start."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import IO, Any

from mamabear.compat.versions import moved

_opened: dict[Path, IO[str]] = {}


def server_errors_to(path: Path) -> None:
    """Stdio MCP servers started from now on write their stderr to ``path`` (appended)."""
    from mcp.client import stdio

    if path not in _opened:
        path.parent.mkdir(parents=True, exist_ok=True)
        _opened[path] = path.open("a", encoding="utf-8")
    inner: Any = getattr(stdio.stdio_client, "__wrapped__")  # noqa: B009 - the function under its @asynccontextmanager
    inner.__defaults__ = (_opened[path],)


def problems() -> list[str]:
    try:
        from mcp.client import stdio
    except ImportError as exc:
        return [moved("mcp", f"module {exc.name}", "cannot be imported")]
    inner: Any = getattr(stdio.stdio_client, "__wrapped__", None)
    params = list(inspect.signature(inner).parameters.values()) if inner is not None else []
    if len(params) != 2 or params[1].name != "errlog" or len(getattr(inner, "__defaults__", None) or ()) != 1:
        return [moved("mcp", "stdio_client(server, errlog=sys.stderr)", "has changed")]
    return []
