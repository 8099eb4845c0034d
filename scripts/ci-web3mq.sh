#!/usr/bin/env bash
# Installs what the Web3MQ SDK tests need: node and npm (Debian's, when missing) and Web3MQ's
# published JavaScript SDK with its pinned dependencies in tests/js/web3mq (npm ci, skipped when
# the lock file is already what is installed). Idempotent; run before the tests with
# WALLET_AUTH_REQUIRE_WEB3MQ_SDK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "node and npm are missing and cannot be installed here: the SDK tests will skip" >&2
        exit 0
    fi
fi
project=tests/js/web3mq
# A stamp of the lock file that was last installed: when it matches, there is nothing to do.
stamp="$project/node_modules/.installed-lock.sha256"
wanted="$(sha256sum "$project/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    (cd "$project" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$wanted" >"$stamp"
fi
node --version
