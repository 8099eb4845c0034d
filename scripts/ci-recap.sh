#!/usr/bin/env bash
# Installs what the ReCap (ERC-5573) tests' Node cross-check needs: node and npm (Debian's, when
# missing) and the pinned siwe-recap package of tests/js/recap (npm ci, skipped when the lock file
# is already what is installed). Idempotent; run before the tests with WALLET_AUTH_REQUIRE_RECAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "node and npm are missing and cannot be installed here: the ReCap cross-check will skip" >&2
        exit 0
    fi
fi
project=tests/js/recap
stamp="$project/node_modules/.installed-lock.sha256"
wanted="$(sha256sum "$project/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    (cd "$project" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    echo "$wanted" >"$stamp"
fi
