#!/usr/bin/env bash
# One-time setup on a fresh machine: a virtual environment in .venv with ptdit, all its extras and its test tools.
# torch is pinned in the same pip call (2.13.0, CPU wheel on these machines); GPU users may install their own
# torch build first and drop the pin. Fashion-MNIST (a Debian package) is installed when apt-get is usable.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null) \
    || echo "setup: could not install dataset-fashion-mnist; the Fashion-MNIST world and its tests will be skipped" >&2
fi

# Chromium (Debian's) for the browser test of `ptdit demo` (tests/test_demo.py skips where it is missing)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
    || echo "setup: could not install chromium; the browser test of ptdit demo will be skipped" >&2
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "torch==2.13.0" -e ".[all,dev]"
echo "setup: ready (.venv/bin/ptdit, .venv/bin/python -m pytest)"
