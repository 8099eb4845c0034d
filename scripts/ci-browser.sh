#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/test_browser.py) when it is missing; a
# no-op otherwise. Playwright, from the test extra, drives this browser through executable_path:
# it never downloads a browser of its own (do not run `playwright install`).
set -euo pipefail
have_chromium() {
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}
if have_chromium; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "Chromium not found and cannot install it here (needs root and apt-get):" \
        "the browser tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
have_chromium
