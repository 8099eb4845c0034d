#!/usr/bin/env bash
# Install the package with its test extras into ./.venv, the servers and clients the tests run
# against (redis-server, PostgreSQL, Node with the pinned npm packages: anvil, solc, the Solana
# wallet-standard helpers), then lint, type-check and run the tests.
# This is the README's test command; .ci/run runs exactly this (with every real part required).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages need root and apt-get; elsewhere install them yourself, or those tests skip
# (unless WALLET_AUTH_REQUIRE_* says they must run, as in CI).
if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server not found: the Redis tests will be skipped" >&2
    fi
fi
bash scripts/ci-postgres.sh
bash scripts/ci-solana.sh || echo "the Solana Node cross-check could not be installed" >&2
bash scripts/ci-chain.sh || echo "anvil and solc could not be installed" >&2
bash scripts/ci-web3mq.sh || echo "the Web3MQ SDK could not be installed" >&2
bash scripts/ci-browser.sh || echo "Chromium could not be installed" >&2
bash scripts/ci-recap.sh || echo "the ReCap Node cross-check could not be installed" >&2
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests benchmarks examples
.venv/bin/mypy
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests" >&2
    exit 0
fi
exit "$status"
