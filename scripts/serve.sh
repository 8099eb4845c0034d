#!/usr/bin/env bash
# Install the package with the server extra into ./.venv and run the standalone auth service
# (in-memory nonces, SQLite users in ./asgi-wallet-auth.db). Arguments go to `serve`.
# The install runs only when needed: the first time, or after pyproject.toml has changed (the
# package is installed in editable mode, so changes to its code need no reinstall).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.serve-installed
if [ ! -x .venv/bin/asgi-wallet-auth ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[serve]'
    touch "$stamp"
fi
exec .venv/bin/asgi-wallet-auth serve "$@"
