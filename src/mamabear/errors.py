"""Errors a user can act on: each carries one sentence and the exit code it maps to."""

from __future__ import annotations

# Exit codes are part of the command-line contract: scripts and CI branch on them (the README lists them; keep both in step).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_TIME_LIMIT = 4
EXIT_STUCK = 5  # a mission that kept failing the same way, or made no progress, after a re-plan
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


class StorageError(MamabearError):
    """A store, memory or file mamabear keeps that cannot be written: a full disk, a read-only one, a failing one."""


class StoreUnavailable(StorageError):
    """The run store's server did not answer for longer than the store wait: nothing is wrong with the run, which
    ends interrupted (resumable; a worker pool queues it again)."""


STORAGE_FAULTS = (
    "disk is full",
    "no space left",
    "disk i/o error",
    "readonly database",
    "read-only file system",
    "unable to open database file",
    "could not extend file",
    "read-only transaction",
)


def storage_fault(exc: BaseException) -> str | None:
    """What went wrong with the disk, if ``exc`` (or what caused it) is a storage fault; None for anything else."""
    import errno

    current: BaseException | None = exc
    for _ in range(6):
        if current is None:
            return None
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT):
            return current.strerror or str(current)
        text = str(current).lower()
        if any(fault in text for fault in STORAGE_FAULTS):
            return str(getattr(current, "orig", None) or current).strip().splitlines()[0]
        current = current.__cause__ or current.__context__
    return None
