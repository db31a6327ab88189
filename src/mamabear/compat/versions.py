"""Which version of a library is installed, and the sentence for an internal of it that has moved."""

from __future__ import annotations


def version(distribution: str) -> str:
    if distribution == "python":
        import platform

        return platform.python_version()
    from importlib import metadata  # 20 ms of imports: only when a version is asked for

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def moved(distribution: str, what: str, why: str) -> str:
    return f"{distribution} {version(distribution)}: {what} {why}; mamabear relies on it (see mamabear.compat)."
