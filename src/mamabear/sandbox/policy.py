"""Which commands may run: deny rules refuse, allow rules (when any are set) admit; deny wins.

The policy is advice to the agent, not the wall: the jail is. A rule is matched against the
command as written and as the shell will read it (shlex: quotes and backslashes removed,
``;``, ``|`` and ``&&`` set apart by spaces), so ``s\\udo`` or ``"rm" -rf /`` are read as ``sudo``
and ``rm -rf /``. A command so obfuscated that only running it tells what it does can still
pass: that is what the jail is for.
"""

from __future__ import annotations

import shlex

from mamabear.sandbox.config import SandboxConfig


def readings(command: str) -> list[str]:
    """The command as written, and as the shell reads its words (when it can be split: an open quote cannot)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        return [command]
    read = " ".join(words)
    return [command] if read == command else [command, read]


def refusal(config: SandboxConfig, command: str) -> str | None:
    """Why the command may not run, in one sentence for the agent; None when it may."""
    texts = readings(command)
    for rule in config.deny:
        if any(rule.regex.search(text) for text in texts):
            return f"refused by the sandbox policy (deny rule '{rule.pattern}'); the command was not run. Do it another way."
    if config.allow and not any(rule.regex.search(text) for rule in config.allow for text in texts):
        return "refused by the sandbox policy (it matches no allow rule); the command was not run. Use an allowed command."
    return None
