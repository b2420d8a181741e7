#!/usr/bin/env bash
# Install bricksllm into ./.venv (first run only) and start it on the embedded default:
# SQLite under ./data and in-process counters. Extra arguments go to `bricksllm serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/bricksllm ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/bricksllm serve "$@"
