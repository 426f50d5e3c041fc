#!/usr/bin/env bash
# Runs the test suite (the command CI runs) on two worker processes (pytest-xdist; the machines
# have 2 cores). Usage: bash scripts/test.sh [pytest args]; `-n 0` runs it in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -n 2 "$@"
