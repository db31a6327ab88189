"""Model routing: tier -> the first usable concrete model, with its fallbacks and prices."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from mamabear.config import yamlfile
from mamabear.config.settings import Settings
from mamabear.config.yamlfile import YamlMapping
from mamabear.errors import ConfigError, UsageError

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


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a call is tried (``retry:`` in config/models.yaml)."""

    attempts: int = 3  # tries per model on a transient fault before falling back to the next model
    backoff_s: float = 1.0  # first backoff; doubles each retry, with jitter, unless the provider says Retry-After
    max_backoff_s: float = 60.0
    timeout_s: float = 600.0  # per request
    task_retries: int = 1  # a task that still fails is run again this often, told the error


@dataclass(frozen=True)
class CachePolicy:
    """The response cache (``cache:`` in config/models.yaml)."""

    enabled: bool = True
    ttl_s: float | None = 7 * 86400  # how long an answer is reused; None: for ever
    url: str | None = None  # redis://... to share one cache; default: a SQLite file in $MAMABEAR_HOME


# The output cap of an answer when models.yaml gives none for a tier. Without one, a small local model on llama.cpp
# rambled 7,799 tokens in one call (459 s), and the next prompt overflowed its 8,192-token context.
DEFAULT_MAX_TOKENS = {"fast": 4096, "balanced": 8192, "pro": 8192}


@dataclass
class ModelTable:
    providers: dict[str, tuple[str, ...]]  # provider -> environment variables holding its key
    tiers: dict[str, tuple[str, ...]]
    prices: dict[str, tuple[float, float]]  # model -> USD per million tokens (input, output)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    quotas: dict[str, Any] = field(default_factory=dict)  # provider -> quota.Quota (requests and tokens per minute)
    cache: CachePolicy = field(default_factory=CachePolicy)
    vision: tuple[str, ...] = ()  # models that take images, besides those litellm's model table says do
    max_tokens: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_TOKENS))  # tier -> output cap
    base_url_prices: str = "listed"  # a --base-url server's models: priced by prices: only, or "litellm" for a gateway

    @classmethod
    def load(cls, roots: list[Path]) -> ModelTable:
        table = cls(providers={}, tiers={}, prices={})
        for doc, path in yamlfile.layers(roots, "models.yaml"):
            table._merge(doc, path)
        for tier in ("fast", "balanced", "pro"):
            if not table.tiers.get(tier):
                raise ConfigError(f"config/models.yaml: tier '{tier}' lists no models; add at least one.")
        return table

    def _merge(self, doc: object, path: Path) -> None:
        if doc is None:
            return
        if not isinstance(doc, YamlMapping):
            raise ConfigError(f"{path}:1: models.yaml must be a mapping with providers, tiers and prices.")
        for name, entry in (doc.get("providers") or {}).items():
            env = entry.get("env") if isinstance(entry, dict) else None
            if isinstance(env, str):
                env = [env]
            if not isinstance(env, list) or not env:
                raise ConfigError(f"{doc['providers'].where(name)}: provider '{name}' needs 'env', the variables holding its key.")
            self.providers[name] = tuple(env)
            limits = {k: entry.get(k) for k in ("rpm", "tpm") if entry.get(k) is not None}
            for key, value in limits.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise ConfigError(f"{entry.where(key)}: provider '{name}' {key} must be a number above zero (per minute).")
            if limits:
                self.quotas[name] = Quota(**limits)
        vision = doc.get("vision")
        if vision is not None:
            if not isinstance(vision, list) or not all(isinstance(m, str) for m in vision):
                raise ConfigError(f"{doc.where('vision')}: 'vision' must be a list of model ids that take images.")
            self.vision = (*self.vision, *vision)
        for tier, models in (doc.get("tiers") or {}).items():
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise ConfigError(f"{doc['tiers'].where(tier)}: tier '{tier}' must be a list of model ids.")
            self.tiers[tier] = tuple(models)
        for model, price in (doc.get("prices") or {}).items():
            if not isinstance(price, dict) or not all(isinstance(price.get(k), (int, float)) for k in ("input", "output")):
                raise ConfigError(f"{doc['prices'].where(model)}: price of '{model}' needs numeric 'input' and 'output' (USD per million tokens).")
            self.prices[model] = (float(price["input"]), float(price["output"]))
        for tier, cap in (doc.get("max_tokens") or {}).items():
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise ConfigError(f"{doc['max_tokens'].where(tier)}: max_tokens of tier '{tier}' must be a whole number above zero.")
            self.max_tokens[tier] = cap
        gateway = doc.get("base_url_prices")
        if gateway is not None:
            if gateway not in ("listed", "litellm"):
                raise ConfigError(f"{doc.where('base_url_prices')}: base_url_prices must be 'listed' (prices: only) or 'litellm' (a gateway).")
            self.base_url_prices = gateway
        retry = doc.get("retry")
        if retry is not None:
            self.retry = _retry_policy(self.retry, retry, path)
        cache = doc.get("cache")
        if cache is not None:
            self.cache = _cache_policy(self.cache, cache, path)

    def takes_images(self, model: str) -> bool:
        """Whether ``model`` can be shown an image: listed under ``vision:``, or so in litellm's model table."""
        return model in self.vision or model.split("/", 1)[-1] in self.vision or _vision_in_litellm(model)

    def key_env(self, provider: str, settings: Settings) -> str | None:
        """The first variable that holds a key for the provider, or None."""
        for name in self.providers.get(provider, ()):
            if settings.env.get(name):
                return name
        return None

    def fallback_route(self, route: Route, model: str, settings: Settings) -> Route:
        """The route for one of ``route``'s fallback models."""
        if route.base_url:
            return Route(model=model, provider=COMPATIBLE, base_url=route.base_url, max_tokens=route.max_tokens)
        provider = provider_of(model)
        return Route(model=model, provider=provider, key_env=self.key_env(provider, settings), max_tokens=route.max_tokens)

    def fix_hint(self) -> str:
        names = [" or ".join(env) for env in self.providers.values()]
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
                wanted = " or ".join(self.providers.get(provider, ())) or f"the API key for '{provider}'"
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


def _cache_policy(current: CachePolicy, doc: object, path: Path) -> CachePolicy:
    if not isinstance(doc, YamlMapping):
        raise ConfigError(f"{path}:1: 'cache' must be a mapping of enabled, ttl and url.")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ConfigError(f"{doc.where(key)}: cache 'enabled' must be true or false.")
            values["enabled"] = value
        elif key == "ttl":
            if value is None or value in ("forever", "never"):
                values["ttl_s"] = None
            else:
                from mamabear.config.limits import parse_duration

                try:
                    values["ttl_s"] = parse_duration(str(value), "cache ttl")
                except UsageError as exc:
                    raise ConfigError(f"{doc.where(key)}: {exc.message}") from None
        elif key == "url":
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{doc.where(key)}: cache 'url' must be a redis:// or sqlite:/// URL.")
            values["url"] = value or None
        else:
            raise ConfigError(f"{doc.where(key)}: unknown cache setting '{key}'; use enabled, ttl or url.")
    return replace(current, **values)


def _retry_policy(current: RetryPolicy, doc: object, path: Path) -> RetryPolicy:
    if not isinstance(doc, YamlMapping):
        raise ConfigError(f"{path}:1: 'retry' must be a mapping of attempts, backoff_s, max_backoff_s, timeout_s, task_retries.")
    known = {f.name: f.type for f in fields(RetryPolicy)}
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in known:
            raise ConfigError(f"{doc.where(key)}: unknown retry setting '{key}'; use one of {', '.join(known)}.")
        integer = known[key] == "int"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)) or value < 0:
            kind = "a whole number" if integer else "a number"
            raise ConfigError(f"{doc.where(key)}: retry setting '{key}' must be {kind}, zero or more.")
        values[key] = value
    policy = replace(current, **values)
    if policy.attempts < 1 or policy.timeout_s <= 0:
        raise ConfigError(f"{path}: retry needs attempts of at least 1 and a timeout_s above zero.")
    return policy
