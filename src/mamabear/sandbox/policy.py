"""Which commands may run: deny rules refuse, allow rules (when any are set) admit; deny wins."""

from __future__ import annotations

from mamabear.sandbox.config import SandboxConfig


def refusal(config: SandboxConfig, command: str) -> str | None:
    """Why the command may not run, in one sentence for the agent; None when it may."""
    for rule in config.deny:
        if rule.regex.search(command):
            return f"refused by the sandbox policy (deny rule '{rule.pattern}'); the command was not run. Do it another way."
    if config.allow and not any(rule.regex.search(command) for rule in config.allow):
        return "refused by the sandbox policy (it matches no allow rule); the command was not run. Use an allowed command."
    return None
