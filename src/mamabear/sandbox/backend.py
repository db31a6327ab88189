"""What every sandbox backend offers, and what a command returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mamabear.errors import MamabearError


class SandboxError(MamabearError):
    """The sandbox cannot do what was asked (a bad key, an API error, a lost instance): one sentence."""


class Refused(Exception):
    """An action the sandbox will not take (a path outside the workspace, a denied command); told to the agent."""


class Lost(SandboxError):
    """The session's computer is gone (a cloud instance stopped or deleted)."""


@dataclass
class CommandResult:
    output: str
    exit_code: int | None  # None: it did not finish (timed out)
    duration_ms: float
    timed_out: bool = False
    note: str = ""  # why it ended, when that is not obvious from the exit code

    def for_model(self) -> str:
        """What the agent reads: the output, then how the command ended."""
        status = "timed out and was stopped" if self.timed_out else f"exit code {self.exit_code}"
        tail = f"[{status}{'; ' + self.note if self.note else ''}]"
        return f"{self.output.rstrip()}\n{tail}" if self.output.strip() else tail


def cap_text(text: str, cap: int) -> str:
    """At most ``cap`` bytes of text: its head and tail, with the middle cut and counted."""
    data = text.encode("utf-8", "replace")
    if len(data) <= cap:
        return text
    half = cap // 2
    head, tail = data[:half].decode("utf-8", "ignore"), data[-half:].decode("utf-8", "ignore")
    return f"{head}\n[... {len(data) - 2 * half} bytes of output cut ...]\n{tail}"


class Backend(Protocol):
    name: str

    def interrupt(self) -> None: ...  # stop every command running now (the run is over)

    def create(self, session_id: str, network: bool, host_ports: tuple[int, ...]) -> tuple[str | None, str]: ...  # (remote id, workdir)
    def caveat(self, session: dict) -> str | None: ...  # what a person should know about where its commands run
    def bash(self, session: dict, command: str, timeout_s: float) -> CommandResult: ...
    def view(self, session: dict, path: str, view_range: list[int] | None) -> str: ...
    def create_file(self, session: dict, path: str, text: str) -> str: ...
    def str_replace(self, session: dict, path: str, old: str, new: str) -> str: ...
    def insert(self, session: dict, path: str, line: int, text: str) -> str: ...
    def pause(self, session: dict) -> None: ...
    def resume(self, session: dict) -> None: ...
    def stop(self, session: dict) -> None: ...
    def alive(self, session: dict) -> str: ...  # running | paused | lost
