"""crewai-tools' habit of offering to install a missing package when a tool is made (``click.confirm``, then
``uv add``/``pip install``): mamabear never lets it ask or install. While a tool is made, the prompt raises
``MissingPackage`` with the packages it names, and the caller says in one sentence what to install."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mamabear.compat.versions import moved


class MissingPackage(Exception):
    """A tool class needs packages that are not installed: ``packages``, as crewai-tools names them."""

    def __init__(self, packages: list[str]) -> None:
        super().__init__(", ".join(packages))
        self.packages = packages


@contextmanager
def no_install_prompts() -> Iterator[None]:
    """While the block runs, crewai-tools' offer to install a package raises MissingPackage instead of asking."""
    import click

    def refuse(text: str, *args: Any, **kwargs: Any) -> bool:
        raise MissingPackage(re.findall(r"'([^']+)'", text) or [text])

    asked = click.confirm
    click.confirm = refuse
    try:
        yield
    finally:
        click.confirm = asked


def problems() -> list[str]:
    try:
        import click
        from crewai_tools.tools.tavily_search_tool import tavily_search_tool
    except ImportError as exc:
        return [moved("crewai-tools", f"module {exc.name}", "cannot be imported")]
    if "click.confirm(" not in _source(tavily_search_tool) or not callable(getattr(click, "confirm", None)):
        return [moved("crewai-tools", "TavilySearchTool's click.confirm install prompt (what mamabear refuses)", "has changed")]
    return []


def _source(module: Any) -> str:
    import inspect

    return inspect.getsource(module)
