#!/usr/bin/env bash
# Set up and run the whole test suite (unit tests on a tiny random BERT + MiniLM integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# Two worker processes, a test file each at a time (module fixtures are built once per file):
# much of the suite waits on subprocesses, imports and the tokenizer's tables, not on both cores.
# TEST_WORKERS=0 runs in this process (e.g. for pdb).
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
