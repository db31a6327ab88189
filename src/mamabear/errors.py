"""Errors a user can act on: each carries one sentence and the exit code it maps to."""

from __future__ import annotations

# Exit codes are part of the command-line contract (DESIGN.md).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_TIME_LIMIT = 4
EXIT_INTERRUPTED = 130


class MamabearError(Exception):
    """A problem reported to the user as one sentence, never as a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(MamabearError):
    """Broken or inconsistent configuration; the message names file and line."""


class UsageError(MamabearError):
    """A bad flag, input or id on the command line."""


class NotFound(UsageError):
    """An id or name that does not exist."""
