#!/usr/bin/env bash
# Install bricksllm with its test tools into ./.venv and run the whole test suite: unit, storage
# contracts (SQLite, and the PostgreSQL and Redis on 127.0.0.1), integration and multi-instance
# tests. Lint runs first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
.venv/bin/pip install --quiet -e '.[dev]'
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
if [ "$#" -eq 0 ]; then  # the proxy tests once more on the aiohttp server and client (fallback stack)
  BRICKSLLM_TEST_STACK=aiohttp .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/integration/test_proxy_*.py tests/integration/test_provider_*.py tests/integration/test_hostile_input.py \
    tests/integration/test_failure_matrix.py
fi
