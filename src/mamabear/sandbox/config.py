"""``config/sandbox.yaml``: which backend, the limits of a command, kinds and their set-up, the command policy."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.settings import Settings
from mamabear.config.yamlfile import YamlMapping, known_keys
from mamabear.errors import ConfigError, UsageError

BACKENDS = ("local", "scrapybara")
ISOLATION = ("required", "best-effort")  # no jail: refuse to run commands, or run them unjailed with a warning


@dataclass(frozen=True)
class CommandLimits:
    timeout_s: float = 120.0
    output_kib: int = 64
    cpu_s: int = 600
    memory_mib: int = 4096
    file_mib: int = 1024
    processes: int = 1024  # processes (and threads) a command may have at once: a fork bomb stops here


@dataclass(frozen=True)
class CloudOptions:
    timeout_hours: float = 2.0
    blocked_domains: tuple[str, ...] = ()
    usd_per_hour: float = 0.05
    workdir: str = "/home/scrapybara/work"


@dataclass(frozen=True)
class ScreenOptions:
    """Screenshots shown to the model (the ``computer_use`` tool): their size, and a run's image budget."""

    width: int = 1024  # screenshots are scaled down to this width (pixels) before the model sees them
    max_images: int = 60  # screenshots in one run, over all its attempts: the run stops cleanly after them
    max_mib: float = 30.0  # and their bytes (as sent to the model)
    keep: int = 3  # screenshots in one model request: the latest ones


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]


@dataclass
class SandboxConfig:
    backend: str = "auto"
    limits: CommandLimits = field(default_factory=CommandLimits)
    idle_pause_minutes: float = 10.0
    reuse_by_kind: bool = False
    scrapybara: CloudOptions = field(default_factory=CloudOptions)
    screen: ScreenOptions = field(default_factory=ScreenOptions)
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> set-up commands
    isolation: str = field(default_factory=lambda: "required" if sys.platform.startswith("linux") else "best-effort")
    network: bool = True  # a local session's commands reach the internet (never the host's loopback)
    kind_network: dict[str, bool] = field(default_factory=dict)  # a kind's own network setting
    kind_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)  # host loopback ports a kind's jail may reach
    kind_auth: dict[str, str] = field(default_factory=dict)  # a kind's saved Scrapybara browser log-ins (auth state id)
    deny: tuple[Rule, ...] = ()
    allow: tuple[Rule, ...] = ()

    @classmethod
    def load(cls, roots: list[Path], env: Mapping[str, str] | None = None) -> SandboxConfig:
        """The layered sandbox.yaml files; ``MAMABEAR_ISOLATION`` in ``env`` overrides their isolation."""
        config = cls()
        for doc, path in yamlfile.layers(roots, "sandbox.yaml"):
            config._merge(doc, path)
        chosen = (env or {}).get("MAMABEAR_ISOLATION")
        if chosen:
            if chosen not in ISOLATION:
                raise UsageError(f"MAMABEAR_ISOLATION={chosen}: it is required or best-effort.")
            config.isolation = chosen
        return config

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
        return self.kinds[name]

    def network_for(self, kind: str, crew: bool | None = None) -> bool:
        """Whether a new session of ``kind`` gets the network: the crew's ``network``, else the kind's, else the default."""
        return crew if crew is not None else self.kind_network.get(kind, self.network)

    def _merge(self, doc: Any, path: Path) -> None:
        if doc is None:
            return
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: sandbox.yaml must be a mapping.")
        known_keys(
            doc, {"backend", "limits", "idle_pause_minutes", "reuse_by_kind", "scrapybara", "screen", "kinds", "policy", "isolation", "network"}, "sandbox.yaml"
        )
        if "isolation" in doc:
            if doc["isolation"] not in ISOLATION:
                raise ConfigError(f"{doc.where('isolation')}: isolation must be required or best-effort.")
            self.isolation = doc["isolation"]
        if "network" in doc:
            self.network = _flag(doc, "network")
        if "backend" in doc:
            if doc["backend"] not in ("auto", *BACKENDS):
                raise ConfigError(f"{doc.where('backend')}: backend must be auto, local or scrapybara.")
            self.backend = doc["backend"]
        if "limits" in doc:
            self.limits = _numbers(doc, "limits", CommandLimits, self.limits)
        if "scrapybara" in doc:
            self.scrapybara = _numbers(doc, "scrapybara", CloudOptions, self.scrapybara)
        if "screen" in doc:
            self.screen = _numbers(doc, "screen", ScreenOptions, self.screen)
        if "idle_pause_minutes" in doc:
            self.idle_pause_minutes = _number(doc, "idle_pause_minutes")
        if "reuse_by_kind" in doc:
            self.reuse_by_kind = _flag(doc, "reuse_by_kind")
        for name, entry in _section(doc, "kinds").items():
            setup = entry.get("setup", []) if isinstance(entry, dict) else None
            if not isinstance(setup, list) or not all(isinstance(c, str) for c in setup):
                raise ConfigError(f"{doc['kinds'].where(name)}: kind '{name}' needs 'setup', a list of commands.")
            known_keys(entry, {"setup", "network", "host_ports", "auth_state"}, f"kind '{name}'")
            if "auth_state" in entry:
                if not isinstance(entry["auth_state"], str) or not entry["auth_state"]:
                    raise ConfigError(f"{entry.where('auth_state')}: auth_state of kind '{name}' is the id `mamabear sandbox save-auth` printed.")
                self.kind_auth[name] = entry["auth_state"]
            self.kinds[name] = tuple(setup)
            if "network" in entry:
                self.kind_network[name] = _flag(entry, "network")
            if "host_ports" in entry:
                ports = entry["host_ports"]
                if not isinstance(ports, list) or not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
                    raise ConfigError(f"{entry.where('host_ports')}: host_ports of kind '{name}' must be a list of port numbers.")
                self.kind_ports[name] = tuple(ports)
        policy = _section(doc, "policy")
        known_keys(policy, {"deny", "allow"}, "policy") if policy else None
        if "deny" in policy:
            self.deny = _rules(policy, "deny")
        if "allow" in policy:
            self.allow = _rules(policy, "allow")


def _section(doc: YamlMapping, key: str) -> YamlMapping:
    value = doc.get(key)
    if value is None:
        return YamlMapping()
    if not isinstance(value, YamlMapping):
        raise ConfigError(f"{doc.where(key)}: '{key}' must be a mapping.")
    return value


def _flag(entry: YamlMapping, key: str) -> bool:
    if not isinstance(entry[key], bool):
        raise ConfigError(f"{entry.where(key)}: '{key}' must be true or false.")
    return bool(entry[key])


def _number(entry: YamlMapping, key: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{entry.where(key)}: '{key}' must be a number of at least 0.")
    return float(value)


def _numbers(doc: YamlMapping, key: str, kind: type, current: Any) -> Any:
    section = _section(doc, key)
    fields = current.__dataclass_fields__
    known_keys(section, set(fields), key)
    values: dict[str, Any] = {}
    for name in section:
        default = getattr(current, name)
        if isinstance(default, tuple):
            items = section[name] or []
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ConfigError(f"{section.where(name)}: '{name}' must be a list of names.")
            values[name] = tuple(items)
        elif isinstance(default, str):
            values[name] = str(section[name])
        else:
            values[name] = type(default)(_number(section, name))
    return kind(**{**current.__dict__, **values})


def _rules(policy: YamlMapping, key: str) -> tuple[Rule, ...]:
    items = policy.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{policy.where(key)}: policy '{key}' must be a list of regular expressions.")
    rules = []
    for pattern in items:
        try:
            rules.append(Rule(pattern, re.compile(pattern)))
        except re.error as exc:
            raise ConfigError(f"{policy.where(key)}: policy rule '{pattern}' is not a valid regular expression ({exc}).") from exc
    return tuple(rules)
