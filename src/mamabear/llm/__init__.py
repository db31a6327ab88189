"""Model calls: retries and fallback around each call, the response cache, quotas, pricing, TLS and provider probes."""
