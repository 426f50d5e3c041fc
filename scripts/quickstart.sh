#!/usr/bin/env bash
# Sets everything up, then trains the default preset (DCGAN on Fashion-MNIST) for its short
# default budget and writes sample grids to runs/NNNNN-dcgan/samples/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ganforge train "$@"
