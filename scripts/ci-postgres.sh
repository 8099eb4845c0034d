#!/usr/bin/env bash
# Install Debian's PostgreSQL server for the PostgreSQL tests when it is missing; a no-op otherwise.
# The tests start their own throwaway cluster (initdb + postgres on a loopback port), so the
# package's own cluster service is not needed and is not started here.
set -euo pipefail
have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if have_postgres; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL not found and cannot install it here (needs root and apt-get):" \
        "the PostgreSQL tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_postgres
