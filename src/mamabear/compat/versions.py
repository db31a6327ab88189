"""Which version of a library is installed, and the sentence for an internal of it that has moved."""

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


def moved(distribution: str, what: str, why: str) -> str:
    return f"{distribution} {version(distribution)}: {what} {why}; mamabear relies on it (see mamabear.compat)."
