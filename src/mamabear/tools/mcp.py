"""MCP servers of ``config/tools.yaml`` as CrewAI's own server configs (an agent's ``mcps``): CrewAI starts a stdio
server, or connects to a remote one, when the agent lists or calls its tools, and stops it after each use.

A server's ``tools:`` list is its tool filter, a pydantic model (CrewAI's checkpoints dump an agent's ``mcps``,
and its own StaticToolFilter cannot be written there). A restored run's agents get their servers again from the plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crewai.mcp import MCPServerHTTP, MCPServerSSE, MCPServerStdio
from pydantic import BaseModel

from mamabear.config.toolset import McpServer

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AllowedTools(BaseModel):
    """An MCP server's tools an agent may use, by name: CrewAI calls it with a tool's definition (and a context)."""

    names: list[str]

    def __call__(self, *given: Any) -> bool:
        return given[-1].get("name") in self.names


def server_config(server: McpServer, env: Mapping[str, str], log: Path) -> Any:
    """CrewAI's server config for ``server``; ``${VAR}`` in its env and headers from ``env``. A stdio server gets only the
    variables declared for it (the MCP SDK adds a safe few, such as PATH and HOME); what it writes to stderr goes to ``log``."""

    def filled(values: dict[str, str]) -> dict[str, str]:
        return {k: _VAR.sub(lambda m: env.get(m.group(1), ""), v) for k, v in values.items()}

    only: dict[str, Any] = {"tool_filter": AllowedTools(names=list(server.tools))} if server.tools else {}
    if server.transport == "stdio":
        from mamabear.compat.mcp import server_errors_to

        server_errors_to(log)
        assert server.command is not None  # the config's check: stdio has a command
        return MCPServerStdio(command=server.command, args=list(server.args), env=filled(server.env) or None, **only)
    kind = MCPServerHTTP if server.transport == "http" else MCPServerSSE
    assert server.url is not None  # the config's check: http and sse have a url
    return kind(url=server.url, headers=filled(server.headers) or None, **only)
