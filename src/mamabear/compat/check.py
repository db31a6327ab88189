"""Every internal mamabear relies on, checked where it is: one sentence per one that has moved."""

from __future__ import annotations

from mamabear.compat import chroma, crewai, crewai_tools, httpx, litellm, mcp, scrapybara, stdlib, typer


def problems() -> list[str]:
    """One sentence per internal that is not where mamabear expects it (empty when all are)."""
    found: list[str] = []
    for module in (crewai, crewai_tools, mcp, httpx, chroma, scrapybara, litellm, typer, stdlib):
        found.extend(module.problems())
    return found
