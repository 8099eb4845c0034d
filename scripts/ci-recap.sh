#!/usr/bin/env bash
# The ReCap (ERC-5573) tests' Node cross-check: siwe-recap, pinned in tests/js/recap.
exec bash "$(dirname "$0")/ci-npm.sh" tests/js/recap --ignore-scripts
