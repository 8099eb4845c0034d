#!/usr/bin/env bash
# The Solana tests' Node cross-check: @solana/wallet-standard-util, pinned in tests/js/solana.
exec bash "$(dirname "$0")/ci-npm.sh" tests/js/solana
