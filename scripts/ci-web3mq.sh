#!/usr/bin/env bash
# Web3MQ's published JavaScript SDK and its dependencies, pinned in tests/js/web3mq.
exec bash "$(dirname "$0")/ci-npm.sh" tests/js/web3mq
