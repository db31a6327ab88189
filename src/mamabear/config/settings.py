"""Settings: command-line flag > environment > .env in the working directory > defaults.

Kept to the standard library and python-dotenv so that commands which never run a
crew (``--help``, ``agents list``) start fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    project_dir: Path | None  # holds a local config/ and/or crews/ overriding the packaged ones
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None  # for the --base-url server, when it needs one
    sandbox: str | None = None  # --sandbox: the backend agents' tools use (local | scrapybara)
    session: str | None = None  # --session: an existing sandbox session to work in
    no_memory: bool | None = None  # --no-memory: this run neither recalls nor saves memories
    no_cache: bool | None = None  # --no-cache: every model request goes to the provider, and nothing is cached
    cache_url: str | None = None  # the response cache: a redis:// URL to share one, else $MAMABEAR_HOME/cache.db
    record: str | None = None  # --record FILE: every model request and answer written to FILE (llm/tape.py)
    replay: str | None = None  # --replay FILE: every answer from FILE, no model called
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # environment + .env, for provider keys

    def with_flags(self, **flags: object) -> Settings:
        """Return a copy with every flag that was actually given (not None) applied."""
        given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
        return replace(self, **given)


def _dotenv(cwd: Path) -> dict[str, str]:
    path = cwd / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _flag(value: str | None) -> bool | None:
    return (value or "").lower() in ("1", "true", "yes") or None


def _crewai_project(cwd: Path) -> bool:
    """A project `crewai create crew|flow` made: src/<package>/config/ (classic), crew.jsonc (its JSON layout), or a
    pyproject.toml with a [tool.crewai] table or a kickoff script (a flow's)."""
    from mamabear.config.json_crew import crew_file

    if any(cwd.glob("src/*/config/agents.yaml")) or crew_file(cwd) is not None:
        return True
    try:
        text = (cwd / "pyproject.toml").read_text(errors="replace")
    except OSError:
        return False
    return "[tool.crewai]" in text or re.search(r"^kickoff\s*=", text, re.MULTILINE) is not None  # a flow from before [tool.crewai]


def load(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    cwd = cwd or Path.cwd()
    env = {**_dotenv(cwd), **(os.environ if environ is None else environ)}
    home = Path(env.get("MAMABEAR_HOME") or Path.home() / ".mamabear").expanduser()
    configured = env.get("MAMABEAR_CONFIG_DIR")
    if configured:
        project_dir: Path | None = Path(configured).expanduser()
        if not Path(configured).expanduser().is_dir():
            from mamabear.errors import UsageError

            raise UsageError(f"MAMABEAR_CONFIG_DIR '{configured}' is not a directory; point it at a project folder (with config/ or crews/) or unset it.")
    elif (cwd / "config").is_dir() or (cwd / "crews").is_dir() or _crewai_project(cwd):
        project_dir = cwd
    else:
        project_dir = None
    return Settings(
        home=home,
        database_url=env.get("MAMABEAR_DATABASE_URL") or f"sqlite:///{home / 'mamabear.db'}",
        project_dir=project_dir,
        model=env.get("MAMABEAR_MODEL") or None,
        base_url=env.get("MAMABEAR_BASE_URL") or None,
        api_key=env.get("MAMABEAR_API_KEY") or None,
        sandbox=env.get("MAMABEAR_SANDBOX") or None,
        no_memory=_flag(env.get("MAMABEAR_NO_MEMORY")),
        no_cache=_flag(env.get("MAMABEAR_NO_CACHE")),
        cache_url=env.get("MAMABEAR_CACHE_URL") or None,
        replay=env.get("MAMABEAR_REPLAY") or None,
        env=env,
    )


PRIVACY_DEFAULTS = {
    # Nothing phones home unless the user asked for it: CrewAI telemetry and tracing, litellm's price fetch and
    # Hugging Face downloads are off unless set (README, Privacy).
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
}


def apply_privacy_defaults(environ: dict[str, str] | None = None) -> None:
    """Set the no-phone-home switches unless the user set them; must run before crewai is imported."""
    target = os.environ if environ is None else environ
    for key, value in PRIVACY_DEFAULTS.items():
        target.setdefault(key, value)
