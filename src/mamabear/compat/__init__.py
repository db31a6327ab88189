"""Every use of a library's internals, in one place: CrewAI, httpx, Chroma, Scrapybara, litellm, Typer, the stdlib.

Nothing here takes effect by being imported: the run engine calls ``crewai.apply_checkpoint_patches()``
before it builds a crew, and every other helper is called where it is needed. ``problems()``
checks that each internal is still where mamabear expects it and names the library and its
version when one has moved; ``tests/test_compat.py`` runs it, so an upgrade that breaks one
fails loudly in CI instead of quietly at run time. The libraries are pinned or bounded in
``pyproject.toml`` to the versions these helpers were written against.
"""

from __future__ import annotations

from importlib import metadata


def version(distribution: str) -> str:
    if distribution == "python":
        import platform

        return platform.python_version()
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def problems() -> list[str]:
    """One sentence per internal that is not where mamabear expects it (empty when all are)."""
    from mamabear.compat import chroma, crewai, httpx, litellm, scrapybara, stdlib, typer

    found: list[str] = []
    for module in (crewai, httpx, chroma, scrapybara, litellm, typer, stdlib):
        found.extend(module.problems())
    return found


def moved(distribution: str, what: str, why: str) -> str:
    return f"{distribution} {version(distribution)}: {what} {why}; mamabear relies on it (see mamabear.compat)."
