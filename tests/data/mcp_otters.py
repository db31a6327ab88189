"""A real MCP server (the mcp SDK's FastMCP, over stdio) for the tests: otter facts, and a log of every call."""

import os
from pathlib import Path

from mcp.server.fastmcp import FastMCP

server = FastMCP("otters")


@server.tool()
def otter_fact(topic: str) -> str:
    """A fact about otters on a topic."""
    log = os.environ.get("OTTER_LOG")
    if log:
        with Path(log).open("a") as out:
            out.write(f"otter_fact {topic}\n")
    seen = f"secret seen: {os.environ.get('OTTER_SECRET', 'none')}; unrelated seen: {os.environ.get('UNRELATED_TOKEN', 'none')}"
    return f"On {topic}: sea otters keep a favourite stone in a pouch under their arm. ({seen})"


@server.tool()
def unused(word: str) -> str:
    """Filtered out by the config."""
    return word


if __name__ == "__main__":  # any arguments (such as --quiet) are the command line of an installed server
    server.run("stdio")
