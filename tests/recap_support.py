"""The Node cross-check of the ReCap tests: ``tests/js/recap/recap.mjs`` over siwe-recap.

Where ``node`` or the installed npm packages are missing the tests that need it skip with that
reason, unless ``WALLET_AUTH_REQUIRE_RECAP=1`` (set by CI after ``scripts/ci-recap.sh``), which
turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "WALLET_AUTH_REQUIRE_RECAP"
JS_DIR = Path(__file__).resolve().parent / "js" / "recap"


def node_recap(mode: str, payload: Any = None) -> Any:
    """Run ``recap.mjs <mode>`` with ``payload`` as JSON on stdin; its JSON answer."""
    node = shutil.which("node")
    package = JS_DIR / "node_modules" / "siwe-recap" / "package.json"
    reason = None
    if node is None:
        reason = "node is not installed (apt-get install nodejs npm)"
    elif not package.is_file():
        reason = "the siwe-recap npm package is not installed (bash scripts/ci-recap.sh)"
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the ReCap cross-check to run")
        pytest.skip(reason)
    assert node is not None
    completed = subprocess.run(
        [node, "recap.mjs", mode],
        cwd=JS_DIR,
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    return json.loads(completed.stdout)
