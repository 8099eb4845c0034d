#!/usr/bin/env bash
# Install the package with the server extra into ./.venv and run the standalone auth service
# (in-memory nonces, SQLite users in ./asgi-wallet-auth.db). Arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[serve]'
exec .venv/bin/asgi-wallet-auth serve "$@"
