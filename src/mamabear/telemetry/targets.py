"""Where traces and metrics go, read from the standard environment variables.

OTLP follows the OpenTelemetry spec: ``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT``,
``..._HEADERS`` and ``..._PROTOCOL`` (``http/protobuf``, the default, or ``grpc``); the
exporters read timeouts, compression and certificates themselves. Langfuse is one more
OTLP target, at its ``/api/public/otel`` endpoint with basic auth. The local JSONL file
is always written (``mamabear runs trace`` reads it) unless ``OTEL_SDK_DISABLED=true``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from mamabear.errors import UsageError

PROTOCOLS = ("http/protobuf", "grpc")
LANGFUSE_CLOUD = "https://cloud.langfuse.com"


@dataclass(frozen=True)
class Target:
    name: str  # "otlp" | "langfuse", for messages
    signal: str  # "traces" | "metrics"
    protocol: str
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # may hold credentials: never printed

    def describe(self) -> str:
        return f"{self.name} {self.signal} -> {self.endpoint} ({self.protocol})"


def disabled(env: Mapping[str, str]) -> bool:
    return (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true"


def _headers(text: str, variable: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{variable}: write headers as key=value pairs separated by commas.")
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _otlp(env: Mapping[str, str], signal: str) -> Target | None:
    upper = signal.upper()
    if (env.get(f"OTEL_{upper}_EXPORTER") or "").strip().lower() == "none":
        return None
    specific = env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT")
    general = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not specific and not general:
        return None
    variable = f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL" if env.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL") else "OTEL_EXPORTER_OTLP_PROTOCOL"
    protocol = (env.get(variable) or "http/protobuf").strip().lower()
    if protocol not in PROTOCOLS:
        raise UsageError(f"{variable}={protocol} is not supported; use http/protobuf or grpc.")
    if specific:
        endpoint = specific.strip()
    elif protocol == "grpc":
        endpoint = general.strip()  # type: ignore[union-attr]  # set: checked by the caller's branch
    else:  # the spec: the general endpoint gets the signal's path appended
        endpoint = f"{general.strip().rstrip('/')}/v1/{signal}"  # type: ignore[union-attr]  # as above
    if not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"OTLP endpoint '{endpoint}' must start with http:// or https://.")
    header_var = f"OTEL_EXPORTER_OTLP_{upper}_HEADERS" if env.get(f"OTEL_EXPORTER_OTLP_{upper}_HEADERS") else "OTEL_EXPORTER_OTLP_HEADERS"
    return Target("otlp", signal, protocol, endpoint, _headers(env.get(header_var) or "", header_var))


def _langfuse(env: Mapping[str, str]) -> Target | None:
    public, secret = env.get("LANGFUSE_PUBLIC_KEY"), env.get("LANGFUSE_SECRET_KEY")
    if not public and not secret:
        return None
    if not (public and secret):
        missing = "LANGFUSE_SECRET_KEY" if public else "LANGFUSE_PUBLIC_KEY"
        raise UsageError(f"Langfuse tracing needs {missing} as well; set it or unset the other Langfuse key.")
    host = (env.get("LANGFUSE_HOST") or env.get("LANGFUSE_BASE_URL") or LANGFUSE_CLOUD).strip().rstrip("/")
    if not host.startswith(("http://", "https://")):
        raise UsageError(f"LANGFUSE_HOST '{host}' must start with http:// or https://.")
    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    return Target("langfuse", "traces", "http/protobuf", f"{host}/api/public/otel/v1/traces", {"authorization": f"Basic {token}"})


def targets(env: Mapping[str, str]) -> list[Target]:
    """Every remote target the environment configures (none: only the local file)."""
    if disabled(env):
        return []
    found = [_otlp(env, "traces"), _otlp(env, "metrics"), _langfuse(env)]
    return [t for t in found if t is not None]
