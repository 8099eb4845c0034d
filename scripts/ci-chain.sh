#!/usr/bin/env bash
# What the contract-wallet tests run on: anvil (a local Ethereum node, whose npm platform package
# carries the binary) and solc (the Solidity compiler, for the mock wallets), pinned in
# tests/js/chain. --ignore-scripts: the platform package already holds the binary, so the
# wrapper's install script (which would fetch one when it is missing) has nothing to do.
exec bash "$(dirname "$0")/ci-npm.sh" tests/js/chain --ignore-scripts
