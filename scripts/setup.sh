#!/usr/bin/env bash
# Sets up ganforge from a clean clone: Fashion-MNIST (Debian package where apt exists),
# a virtual environment in .venv, and the package with its test dependencies.
# Safe to run again. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. Fashion-MNIST offline: Debian ships the real IDX files. Without apt (or root), ganforge
#    falls back to torchvision's download the first time the dataset is used.
if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "== installing Debian's dataset-fashion-mnist"
    ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "   (apt could not install it; torchvision will download Fashion-MNIST instead)"
  fi
fi

# 2. Virtual environment and the package (editable) with its test dependencies.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing ganforge and its dependencies (torch is large: a few minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import ganforge, torch, torchvision; print('ganforge', ganforge.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__)"

# 3. Put Fashion-MNIST where torchvision reads it (from the Debian files, or download).
.venv/bin/ganforge data fashion-mnist || echo "   (Fashion-MNIST is not available yet; see the message above)"

# 4. ganforge studio's browser tests (tests/test_studio_browser.py) drive Debian's chromium with
#    Playwright (Playwright cannot download its own browsers here). Without apt or root they skip.
if command -v apt-get >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "== installing Debian's chromium (for the studio's browser tests)"
    ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null) \
      || echo "   (apt could not install chromium; the studio's browser tests will be skipped)"
  fi
fi
