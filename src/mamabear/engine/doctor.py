"""Health checks for `mamabear doctor`: can this machine run crews, and what would fix it if not."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from mamabear.config.settings import PRIVACY_DEFAULTS
from mamabear.engine.services import Services
from mamabear.errors import MamabearError


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def run_checks(ws: Services) -> list[Check]:
    checks: list[Check] = []
    py = sys.version_info
    checks.append(Check("python", "ok" if (3, 10) <= py[:2] < (3, 14) else "fail", f"{py.major}.{py.minor}.{py.micro}"))
    for package in ("crewai", "litellm", "chromadb", "scrapybara"):
        version = _version(package)
        checks.append(Check(package, "ok" if version else "fail", version or f"not installed; run `pip install {package}`"))

    from mamabear.config.catalog import validate_all

    catalog, errors = validate_all(ws.roots)
    if errors:
        checks.append(Check("config", "fail", "; ".join(errors)))
    else:
        assert catalog is not None
        checks.append(
            Check(
                "config",
                "ok",
                f"{len(catalog.agents)} agents, {len(catalog.tasks)} tasks, {len(catalog.crew_files())} crews from {', '.join(map(str, ws.roots))}",
            )
        )
    try:
        table = ws.models
        routes = []
        for tier in ("fast", "balanced", "pro"):
            route = table.route(tier, ws.settings)
            routes.append(route)
            via = f" via {route.base_url}" if route.base_url else f" (key from {route.key_env})" if route.key_env else ""
            checks.append(Check(f"models.{tier}", "ok", route.model + via))
        from mamabear.llm.pricing import Pricer

        chain = list(dict.fromkeys(m for r in routes for m in r.chain))
        pricer = Pricer.for_run(table, ws.settings)
        unpriced = pricer.unpriced(chain)
        checks.append(
            Check(
                "prices",
                ("warn" if pricer.local else "fail") if unpriced else "ok",  # a local server's model is often free
                f"no price known for {', '.join(unpriced)}: their calls would be shown as unpriced; add them under prices: in config/models.yaml"
                if unpriced
                else f"{len(chain)} routed models priced",
            )
        )
        from mamabear.llm.probe import capabilities, not_listed, probe

        answers = probe(routes, ws.settings)  # the configuration is one thing; a server that answers is another
        for answer in answers:
            checks.append(Check(f"provider {answer.target}", answer.status, answer.detail))
        if ws.settings.base_url and all(a.status == "ok" for a in answers):
            not_served = not_listed(routes, {a.target: a.served for a in answers})
            checks.append(Check("served models", "warn" if not_served else "ok", " ".join(not_served) or "the server lists every routed model"))
            checks.extend(Check(p.target, p.status, p.detail) for p in capabilities(routes[-1], ws.settings))
    except MamabearError as exc:
        checks.append(Check("models", "fail", exc.message))

    try:
        backend = ws.sandbox.choose_backend(ws.settings)
        if backend == "local":
            bash = shutil.which("bash")
            checks.append(
                Check(
                    "sandbox",
                    "ok" if bash else "fail",
                    f"local, workspaces in {ws.settings.home / 'sandboxes'}" if bash else "the local sandbox needs bash; install it",
                )
            )
            checks.append(_jail_check(ws.sandbox.isolation))
        else:
            has_key = bool(ws.settings.env.get("SCRAPYBARA_API_KEY"))
            checks.append(
                Check("sandbox", "ok" if has_key else "fail", "scrapybara (key from SCRAPYBARA_API_KEY)" if has_key else "scrapybara needs SCRAPYBARA_API_KEY")
            )
    except MamabearError as exc:
        checks.append(Check("sandbox", "fail", exc.message))

    try:
        from mamabear.memory.shared import location

        memory = ws.memory_config
        checks.append(Check("memory", "ok", f"{location(ws.settings)}, collection {memory.collection}, embedder {memory.embedder_name}"))
    except MamabearError as exc:
        checks.append(Check("memory", "fail", exc.message))

    try:
        store = ws.store
        checks.append(Check("store", "ok", f"{store.engine.url.render_as_string(hide_password=True)}"))
    except MamabearError as exc:
        checks.append(Check("store", "fail", exc.message))

    checks.extend(_observability(ws))

    home = ws.settings.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        marker = home / ".doctor-probe"
        marker.write_text("ok")
        marker.unlink()
        checks.append(Check("home", "ok", str(home)))
    except OSError as exc:
        checks.append(Check("home", "fail", f"{home} is not writable ({exc.strerror}); set MAMABEAR_HOME"))

    phoning = [f"{k}={ws.settings.env.get(k)}" for k, v in PRIVACY_DEFAULTS.items() if k in ws.settings.env and ws.settings.env.get(k, "").lower() != v.lower()]
    checks.append(
        Check(
            "privacy",
            "warn" if phoning else "ok",
            f"user settings allow outbound telemetry or downloads: {', '.join(phoning)}" if phoning else "CrewAI telemetry and tracing off, local cost map",
        )
    )
    return checks


def _jail_check(isolation: str) -> Check:
    """The local sandbox's jail: there (ok), missing where isolation allows running unjailed (warn), missing where it does not (fail)."""
    from mamabear.sandbox.jail import support

    found = support()
    if found.jail:
        return Check("sandbox jail", "ok" if found.slirp else "warn", found.summary)
    if isolation == "best-effort":
        return Check("sandbox jail", "warn", f"{found.summary}; isolation: best-effort runs commands unjailed, as you")
    return Check("sandbox jail", "fail", f"{found.summary}; isolation: required refuses to run commands (best-effort runs them unjailed)")


def _observability(ws: Services) -> list[Check]:
    """Where traces go, which response cache runs use, and the quotas in force."""
    from mamabear.telemetry.targets import disabled, targets

    checks = []
    try:
        remote = targets(ws.settings.env)
        where = ", ".join(t.describe() for t in remote)
        detail = "off (OTEL_SDK_DISABLED=true)" if disabled(ws.settings.env) else f"{ws.settings.home / 'traces'}" + (f"; {where}" if where else "")
        checks.append(Check("tracing", "ok", detail))
    except MamabearError as exc:
        checks.append(Check("tracing", "fail", exc.message))
    try:
        cache = ws.response_cache()
        checks.append(Check("cache", "ok", cache.location if cache else "off"))
        if cache:
            cache.close()
        quotas = ", ".join(f"{name} {q.rpm or '-'} rpm / {q.tpm or '-'} tpm" for name, q in ws.models.quotas.items())
        shared = " (shared by the workers, in the broker's Redis)" if ws.settings.env.get("MAMABEAR_BROKER_URL") else ""
        checks.append(Check("quotas", "ok", (quotas + shared) if quotas else "none"))
    except MamabearError as exc:
        checks.append(Check("cache", "fail", exc.message))
    checks.append(_broker(ws.settings.env))
    return checks


def _broker(env: Any) -> Check:
    """The worker pool's Redis broker, when one is set (MAMABEAR_BROKER_URL)."""
    url = env.get("MAMABEAR_BROKER_URL")
    if not url:
        return Check("broker", "ok", "off: runs stay on this machine (set MAMABEAR_BROKER_URL for `mamabear worker` and `--queue`)")
    import redis

    from mamabear.config.redact import shown_url

    where = shown_url(url)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, ValueError) as exc:
        return Check("broker", "fail", f"cannot reach {where} ({type(exc).__name__}); check MAMABEAR_BROKER_URL and that Redis is up")
    from urllib.parse import urlsplit

    if not urlsplit(url).password and url.startswith(("redis://", "rediss://")):
        # `mamabear worker` refuses it unless MAMABEAR_BROKER_INSECURE=1: say so before a worker is started
        return Check("broker", "warn", f"{where} has no password: anyone who reaches it can take this pool's runs (give Redis a requirepass)")
    return Check("broker", "ok", f"{where}")
