#!/usr/bin/env bash
# Set up and run the whole test suite (unit tests on a tiny random BERT + MiniLM integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
