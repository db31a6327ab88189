#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the run-store tests; prints its URL on stdout.
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
port=${MAMABEAR_CI_PG_PORT:-$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}
data=$(mktemp -d /tmp/mamabear-pg.XXXXXX)
chown postgres "$data"
as_pg() { runuser -u postgres -- "$@"; }
as_pg "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
as_pg "$bindir/pg_ctl" -D "$data" -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" -l "$data/log" -w start >/dev/null
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres mamabear_test
echo "postgresql+psycopg://postgres@127.0.0.1:$port/mamabear_test"
