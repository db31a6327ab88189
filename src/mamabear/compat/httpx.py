"""httpx's internals: one TLS context for every model client a run builds.

Each OpenAI/Anthropic client builds its httpx transports, and each transport loads
certifi's CA bundle into a fresh SSLContext (about 20 ms). A crew has many clients, and
restoring one from a checkpoint builds them all again: 44 contexts, 0.9 s, for the
development crew. The default context is immutable once built and safe to share, so while
a run builds its clients, ``httpx._transports.default.create_ssl_context`` hands out the same one.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mamabear.compat.versions import moved


@contextmanager
def shared_tls() -> Iterator[None]:
    from httpx._transports import default

    original = default.create_ssl_context
    cache: dict[tuple, Any] = {}

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in cache:
            cache[key] = original(verify=verify, cert=cert, trust_env=trust_env)
        return cache[key]

    default.create_ssl_context = create_ssl_context
    try:
        yield
    finally:
        default.create_ssl_context = original


def problems() -> list[str]:
    try:
        from httpx._transports import default
    except ImportError:
        return [moved("httpx", "module httpx._transports.default", "cannot be imported")]
    create = getattr(default, "create_ssl_context", None)
    if create is None or not {"verify", "cert", "trust_env"} <= set(inspect.signature(create).parameters):
        return [moved("httpx", "httpx._transports.default.create_ssl_context(verify, cert, trust_env)", "is gone or has changed")]
    return []
