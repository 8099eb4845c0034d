#!/usr/bin/env bash
# Install what the contract-wallet tests run on: anvil (a local Ethereum node, whose npm platform
# package carries the binary) and solc (the Solidity compiler, for the mock wallets), pinned by
# tests/js/chain/package-lock.json. Idempotent: does nothing when that lock is already installed.
# The tests then find both under tests/js/chain/node_modules; with WALLET_AUTH_REQUIRE_ANVIL=1
# they fail instead of skipping when either is missing.
set -euo pipefail
cd "$(dirname "$0")/../tests/js/chain"

if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "npm not found: install Node.js and npm, then run $0 again" >&2
        exit 1
    fi
fi

stamp=node_modules/.installed-lock.sha256
wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] \
    && [ -f node_modules/solc/soljson.js ] \
    && compgen -G "node_modules/@foundry-rs/anvil-*/bin/anvil*" >/dev/null; then
    exit 0
fi
# --ignore-scripts: the platform package already holds the binary, so the wrapper's install
# script (which would fetch one when it is missing) has nothing to do.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$wanted" >"$stamp"
