#!/usr/bin/env bash
# Install one of the test suite's pinned npm projects: `bash scripts/ci-npm.sh tests/js/NAME
# [--ignore-scripts]`. Node and npm come from Debian when the machine has none (root and apt-get
# needed; elsewhere the tests that need them skip, unless their WALLET_AUTH_REQUIRE_* says they
# must run). `npm ci` runs only when the lock file differs from the one last installed, so a
# second run costs nothing. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
project=${1:?usage: ci-npm.sh tests/js/NAME [--ignore-scripts]}
shift
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "node and npm are missing and cannot be installed here: $project stays empty" >&2
        exit 0
    fi
fi
# A stamp of the lock file that was last installed: when it matches, there is nothing to do.
stamp="$project/node_modules/.installed-lock.sha256"
wanted="$(sha256sum "$project/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    (cd "$project" && npm ci "$@" --no-audit --no-fund --loglevel=error)
    echo "$wanted" >"$stamp"
fi
