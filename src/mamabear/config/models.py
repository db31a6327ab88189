"""Model routing: tier -> the first usable concrete model, with its fallbacks and prices."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mamabear.config import layered
from mamabear.config.layered import Words
from mamabear.config.settings import Settings
from mamabear.errors import UsageError

COMPATIBLE = "openai"  # the provider an OpenAI-compatible --base-url server stands in for
LOCAL_KEY = "not-needed"  # local servers usually ignore the key; SDKs insist on one


class NoUsableModel(UsageError):
    pass


@dataclass(frozen=True)
class Quota:
    """A provider's client-side rate limit (``rpm``/``tpm`` in models.yaml); llm.quota enforces it across processes."""

    rpm: float | None = None  # requests per minute; None = unlimited
    tpm: float | None = None  # tokens (input + output) per minute; None = unlimited

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True)
class Route:
    model: str  # litellm-style id as configured, e.g. "gemini/gemini-2.5-pro"
    provider: str
    base_url: str | None = None
    key_env: str | None = None  # the variable the key is read from; the key itself never lands here
    fallbacks: tuple[str, ...] = ()
    problem: str | None = None  # set when no provider is usable (only a dry run gets such a route)
    max_tokens: int | None = None  # the most tokens one answer may have (``max_tokens:`` per tier in models.yaml)

    @property
    def chain(self) -> tuple[str, ...]:
        """Every model this route may call, in order: its own, then its fallbacks."""
        return (self.model, *self.fallbacks)

    @property
    def llm_model(self) -> str:
        """The id handed to crewai.LLM: an OpenAI-compatible server is always spoken to as openai/."""
        if self.base_url and not self.model.startswith(f"{COMPATIBLE}/"):
            return f"{COMPATIBLE}/{self.model}"
        return self.model


def _check_base_url(url: str) -> None:
    """A server URL a client can reach: http(s)://host[:port][/path]; else one sentence now, not a failed call a minute later."""
    from urllib.parse import urlparse

    try:
        parts = urlparse(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--base-url '{url}' (or MAMABEAR_BASE_URL) is not a server URL; give one such as http://localhost:11434/v1.")


def provider_of(model: str) -> str:
    prefix, sep, _ = model.partition("/")
    if sep:
        return {"google": "gemini", "claude": "anthropic"}.get(prefix, prefix)
    if model.startswith("gemini"):
        return "gemini"
    if model.startswith("claude"):
        return "anthropic"
    return COMPATIBLE


def tier_for(agent_tier: str, complexity: int | None) -> str:
    if complexity is None:
        return agent_tier
    if complexity <= 3:
        return "fast"
    if complexity >= 8:
        return "pro"
    return agent_tier


PerMinute = Annotated[float, Field(gt=0, allow_inf_nan=False, description="a number above zero (per minute)")]
AtLeastZero = Annotated[float, Field(ge=0, allow_inf_nan=False, description="a number, zero or more")]


def _outage_wait(value: Any) -> Any:
    """``outage_wait:`` as seconds: a number (0 or more) or a duration (``90s``, ``10m``, ``1h``)."""
    from mamabear.config.limits import parse_duration

    said = "outage_wait must be a number of seconds (0 or more) or a duration such as 10m."
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(said)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                return parse_duration(text, "outage_wait")
            except UsageError as exc:
                raise ValueError(exc.message) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(said)
    return float(value)


class RetryPolicy(layered.Section):
    """How hard a call is tried (``retry:`` in config/models.yaml)."""

    attempts: int = Field(3, ge=1, description="a whole number of at least 1")  # tries per model on a transient fault before the next model
    backoff_s: AtLeastZero = 1.0  # first backoff; doubles each retry, with jitter, unless the provider says Retry-After
    max_backoff_s: AtLeastZero = 60.0
    timeout_s: float = Field(600.0, gt=0, allow_inf_nan=False, description="a number above zero")  # per request
    task_retries: int = Field(1, ge=0, description="a whole number, zero or more")  # a task that still fails is run again this often, told the error
    # How long a model server that answered earlier in the run is waited for when it stops answering (a restart, an
    # outage): seconds or a duration such as ``10m``; 0 fails at once, after the tries above.
    outage_wait: Annotated[float, BeforeValidator(_outage_wait)] = 600.0

    @property
    def outage_wait_s(self) -> float:
        return self.outage_wait


def _ttl(value: Any) -> Any:
    """``ttl:`` as seconds: a duration (``7d``, ``12h``, ``600``), or forever (``forever``, ``never`` or empty)."""
    if value is None or value in ("forever", "never"):
        return None
    from mamabear.config.limits import parse_duration

    try:
        return parse_duration(str(value), "cache ttl")
    except UsageError as exc:
        raise ValueError(exc.message) from None


class CachePolicy(layered.Section):
    """The response cache (``cache:`` in config/models.yaml)."""

    enabled: bool = True
    ttl: Annotated[float | None, BeforeValidator(_ttl)] = 7 * 86400  # how long an answer is reused, in seconds; None: for ever
    url: str | None = Field(None, description="a redis:// or sqlite:/// URL")  # default: a SQLite file in $MAMABEAR_HOME

    @property
    def ttl_s(self) -> float | None:
        return self.ttl


class Provider(layered.Section):
    env: Annotated[tuple[str, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else layered.listed(v))] = Field(
        min_length=1, description="the variables holding its key"
    )
    rpm: PerMinute | None = Field(None, description="a number above zero (per minute)")  # a client-side rate limit
    tpm: PerMinute | None = Field(None, description="a number above zero (per minute)")  # tokens (input + output) per minute

    @property
    def quota(self) -> Quota:
        return Quota(rpm=self.rpm, tpm=self.tpm)


class Price(layered.Section):
    input: float = Field(allow_inf_nan=False, description="a number (USD per million input tokens)")
    output: float = Field(allow_inf_nan=False, description="a number (USD per million output tokens)")


# The output cap of an answer when models.yaml gives none for a tier. Without one, a small local model on llama.cpp
# rambled 7,799 tokens in one call (459 s), and the next prompt overflowed its 8,192-token context.
DEFAULT_MAX_TOKENS = {"fast": 4096, "balanced": 8192, "pro": 8192}


class ModelTable(layered.Section):
    providers: dict[str, Provider] = {}
    tiers: dict[str, Words] = Field({}, description="a list of model ids")
    prices: dict[str, Price] = {}  # model -> USD per million tokens
    retry: RetryPolicy = RetryPolicy()
    cache: CachePolicy = CachePolicy()
    vision: Words = Field((), description="a list of model ids that take images")  # besides those litellm's table says do
    max_tokens: dict[str, Annotated[int, Field(ge=1)]] = Field(dict(DEFAULT_MAX_TOKENS), description="a whole number above zero")  # tier -> cap
    # a --base-url server's models: priced by prices: only, or "litellm" for a gateway
    base_url_prices: Literal["listed", "litellm"] = Field("listed", description="'listed' (prices: only) or 'litellm' (a gateway)")

    @classmethod
    def load(cls, roots: list[Path]) -> ModelTable:
        return layered.read(roots, "models.yaml", cls, atomic=("providers.*", "prices.*"))

    @model_validator(mode="after")
    def _every_tier(self) -> ModelTable:
        for tier in ("fast", "balanced", "pro"):
            if not self.tiers.get(tier):
                raise ValueError(f"tier '{tier}' lists no models; add at least one.")
        return self

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _default_caps(cls, caps: Any) -> Any:
        return {**DEFAULT_MAX_TOKENS, **caps} if isinstance(caps, dict) else caps

    @property
    def quotas(self) -> dict[str, Quota]:
        """provider -> its client-side rate limit, for those that have one."""
        return {name: p.quota for name, p in self.providers.items() if p.quota.limited}

    @property
    def usd_per_million(self) -> dict[str, tuple[float, float]]:
        """model -> (input, output) USD per million tokens, as models.yaml lists them."""
        return {model: (p.input, p.output) for model, p in self.prices.items()}

    def takes_images(self, model: str) -> bool:
        """Whether ``model`` can be shown an image: listed under ``vision:``, or so in litellm's model table."""
        return model in self.vision or model.split("/", 1)[-1] in self.vision or _vision_in_litellm(model)

    def key_env(self, provider: str, settings: Settings) -> str | None:
        """The first variable that holds a key for the provider, or None."""
        for name in self.env_of(provider):
            if settings.env.get(name):
                return name
        return None

    def fallback_route(self, route: Route, model: str, settings: Settings) -> Route:
        """The route for one of ``route``'s fallback models."""
        if route.base_url:
            return Route(model=model, provider=COMPATIBLE, base_url=route.base_url, max_tokens=route.max_tokens)
        provider = provider_of(model)
        return Route(model=model, provider=provider, key_env=self.key_env(provider, settings), max_tokens=route.max_tokens)

    def env_of(self, provider: str) -> tuple[str, ...]:
        """The variables that may hold the provider's key."""
        found = self.providers.get(provider)
        return found.env if found is not None else ()

    def fix_hint(self) -> str:
        names = [" or ".join(p.env) for p in self.providers.values()]
        return f"set {', '.join(names)}, pass --model, or pass --base-url URL for an OpenAI-compatible server"

    def route(self, tier: str, settings: Settings, pinned: str | None = None, strict: bool = True) -> Route:
        """Pick the model for one agent: --model, then the agent's own `llm`, then its tier.

        With strict=False an unusable choice comes back with its problem instead of raising,
        so a dry run can show the plan on a machine with no key at all.
        """
        try:
            return replace(self._route(tier, settings, pinned), max_tokens=self.max_tokens.get(tier, DEFAULT_MAX_TOKENS["balanced"]))
        except NoUsableModel as exc:
            if strict:
                raise
            model = settings.model or pinned or self.tiers[tier][0]
            return Route(model=model, provider=provider_of(model), problem=exc.message)

    def _route(self, tier: str, settings: Settings, pinned: str | None) -> Route:
        forced = settings.model or pinned
        if settings.base_url:
            _check_base_url(settings.base_url)
            model = forced or next((m for m in self.tiers[tier] if provider_of(m) == COMPATIBLE), None)
            if model is None:
                raise NoUsableModel(f"tier '{tier}' lists no openai/ model to send to --base-url; pass --model NAME.")
            others = () if forced else tuple(m for m in self.tiers[tier] if provider_of(m) == COMPATIBLE and m != model)
            return Route(model=model, provider=COMPATIBLE, base_url=settings.base_url, fallbacks=others)
        if forced:
            provider = provider_of(forced)
            env = self.key_env(provider, settings)
            if env is None and not settings.replay:  # a replay calls no model: it needs no key
                wanted = " or ".join(self.env_of(provider)) or f"the API key for '{provider}'"
                raise NoUsableModel(f"model '{forced}' needs {wanted} to be set, or pass --base-url URL for an OpenAI-compatible server.")
            return Route(model=forced, provider=provider, key_env=env)
        if settings.replay:  # no key is needed, and the models are those the recording asked
            recorded = _recorded_models(settings.replay, _changed_at(settings.replay))
            usable = [m for m in self.tiers[tier] if m in recorded] or list(self.tiers[tier])
        else:
            usable = [m for m in self.tiers[tier] if self.key_env(provider_of(m), settings)]
        if not usable:
            raise NoUsableModel(f"no model provider is usable for tier '{tier}': {self.fix_hint()}.")
        provider = provider_of(usable[0])
        return Route(model=usable[0], provider=provider, key_env=self.key_env(provider, settings), fallbacks=tuple(usable[1:]))


def _changed_at(path: str) -> int:
    try:
        return Path(path).expanduser().stat().st_mtime_ns
    except OSError:
        return 0


@lru_cache(maxsize=8)
def _recorded_models(path: str, changed_at: int) -> frozenset[str]:
    """The models a recording (``--replay FILE``) holds answers of, read once for each agent's route (``changed_at``:
    the file's, so one recorded again is read again); none when it cannot be read (the replay says why)."""
    import json

    found = set()
    try:
        for line in Path(path).expanduser().read_text().splitlines():
            try:
                found.add(str(json.loads(line)["request"]["model"]))
            except (ValueError, KeyError, TypeError):
                continue
    except OSError:
        pass
    return frozenset(found)


def _vision_in_litellm(model: str) -> bool:
    """litellm's bundled model table (read as a file, once: importing litellm is slow, and would fetch its table online)."""
    table = _litellm_table()
    name = model.split("/", 1)[-1]
    return any(bool(table.get(key, {}).get("supports_vision")) for key in (model, name))


@lru_cache(maxsize=1)
def _litellm_table() -> dict:
    import json
    from importlib.util import find_spec

    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    try:
        return json.loads((Path(spec.submodule_search_locations[0]) / "model_prices_and_context_window_backup.json").read_text())
    except (OSError, ValueError):
        return {}
