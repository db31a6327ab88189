#!/usr/bin/env bash
# Install redis-server for the response-cache tests, which start their own throwaway servers (tests/redisserver.py).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
fi
redis-server --version >&2
