"""The standard library's internals: running the exit handlers before a fast ``os._exit``."""

from __future__ import annotations

import atexit

from mamabear.compat.versions import moved


def run_exit_handlers() -> None:
    atexit._run_exitfuncs()


def problems() -> list[str]:
    if not callable(getattr(atexit, "_run_exitfuncs", None)):
        return [moved("python", "atexit._run_exitfuncs", "is gone")]
    return []
