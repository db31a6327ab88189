"""``config/sandbox.yaml``: which backend, the limits of a command, kinds and their set-up, the command policy."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from mamabear.config import layered
from mamabear.config.layered import Words
from mamabear.config.settings import Settings
from mamabear.errors import UsageError

BACKENDS = ("local", "scrapybara")
ISOLATION = ("required", "best-effort")  # no jail: refuse to run commands, or run them unjailed with a warning

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False, description="a number of at least 0")]
Count = Annotated[int, Field(ge=0, description="a whole number of at least 0")]


class CommandLimits(layered.Section):
    timeout_s: Seconds = 120.0
    output_kib: Count = 64
    cpu_s: Count = 600
    memory_mib: Count = 4096
    file_mib: Count = 1024
    workspace_mib: Count = 4096  # a local session's files on disk (workspace and /tmp): quota.py
    processes: Count = 1024  # processes (and threads) a command may have at once: a fork bomb stops here


class CloudOptions(layered.Section):
    timeout_hours: Seconds = 2.0
    blocked_domains: Words = ()
    usd_per_hour: Seconds = 0.05
    workdir: str = "/home/scrapybara/work"


class ScreenOptions(layered.Section):
    """Screenshots shown to the model (the ``computer_use`` tool): their size, and a run's image budget."""

    width: Count = 1024  # screenshots are scaled down to this width (pixels) before the model sees them
    max_images: Count = 60  # screenshots in one run, over all its attempts: the run stops cleanly after them
    max_mib: Seconds = 30.0  # and their bytes (as sent to the model)
    keep: Count = 3  # screenshots in one model request: the latest ones


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]


def _compiled(patterns: Any) -> Any:
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        return patterns  # refused below, as not a list of rules
    rules = []
    for pattern in patterns:
        try:
            rules.append(Rule(pattern, re.compile(pattern)))
        except re.error as exc:
            raise ValueError(f"policy rule '{pattern}' is not a valid regular expression ({exc}).") from None
    return tuple(rules)


Rules = Annotated[tuple[Rule, ...], BeforeValidator(_compiled), Field(description="a list of regular expressions")]
Port = Annotated[int, Field(gt=0, lt=65536)]


class Kind(layered.Section):
    setup: Words = Field((), description="a list of commands")
    network: bool | None = Field(None, description="true or false")  # None: sandbox.yaml's network
    host_ports: Annotated[tuple[Port, ...], BeforeValidator(layered.listed)] = Field((), description="a list of port numbers")
    auth_state: str | None = Field(None, min_length=1, description="the id `mamabear sandbox save-auth` printed")


class Policy(layered.Section):
    deny: Rules = ()
    allow: Rules = ()


class SandboxConfig(layered.Section):
    backend: Literal["auto", "local", "scrapybara"] = Field("auto", description="auto, local or scrapybara")
    limits: CommandLimits = CommandLimits()
    idle_pause_minutes: Seconds = 10.0
    reuse_by_kind: bool = False
    scrapybara: CloudOptions = CloudOptions()
    screen: ScreenOptions = ScreenOptions()
    kinds: dict[str, Kind] = {}
    isolation: Literal["required", "best-effort"] = Field(
        default_factory=lambda: "required" if sys.platform.startswith("linux") else "best-effort", description="required or best-effort"
    )
    network: bool = True  # a local session's commands reach the internet (never the host's loopback)
    policy: Policy = Policy()

    @classmethod
    def load(cls, roots: list[Path], env: Mapping[str, str] | None = None) -> SandboxConfig:
        """The layered sandbox.yaml files; ``MAMABEAR_ISOLATION`` in ``env`` overrides their isolation."""
        config = layered.read(roots, "sandbox.yaml", cls, atomic=("kinds.*",))
        chosen = (env or {}).get("MAMABEAR_ISOLATION")
        if chosen:
            if chosen not in ISOLATION:
                raise UsageError(f"MAMABEAR_ISOLATION={chosen}: it is required or best-effort.")
            config = config.model_copy(update={"isolation": chosen})
        return config

    @property
    def deny(self) -> tuple[Rule, ...]:
        return self.policy.deny

    @property
    def allow(self) -> tuple[Rule, ...]:
        return self.policy.allow

    @property
    def kind_ports(self) -> dict[str, tuple[int, ...]]:
        """Host loopback ports a kind's jail may reach."""
        return {name: kind.host_ports for name, kind in self.kinds.items()}

    @property
    def kind_auth(self) -> dict[str, str]:
        """A kind's saved Scrapybara browser log-ins (auth state id)."""
        return {name: kind.auth_state for name, kind in self.kinds.items() if kind.auth_state}

    def choose_backend(self, settings: Settings, flag: str | None = None) -> str:
        """--sandbox or MAMABEAR_SANDBOX > a crew's backend > config > scrapybara if its key is set, else local."""
        choice = flag or settings.sandbox or self.backend
        if choice == "auto":
            return "scrapybara" if settings.env.get("SCRAPYBARA_API_KEY") else "local"
        if choice not in BACKENDS:
            raise UsageError(f"sandbox backend '{choice}' is not one of {', '.join(BACKENDS)}.")
        return choice

    def kind(self, name: str) -> tuple[str, ...]:
        if name not in self.kinds:
            raise UsageError(f"no sandbox kind '{name}'; known kinds: {', '.join(self.kinds) or 'none'} (config/sandbox.yaml).")
        return self.kinds[name].setup

    def network_for(self, kind: str, crew: bool | None = None) -> bool:
        """Whether a new session of ``kind`` gets the network: the crew's ``network``, else the kind's, else the default."""
        own = self.kinds[kind].network if kind in self.kinds else None
        return crew if crew is not None else own if own is not None else self.network
