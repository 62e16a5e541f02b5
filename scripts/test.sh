#!/usr/bin/env bash
# Set up and run the test suite: unit tests on a tiny seeded BERT, a learning check for every task
# type, the demo's recipe on the bundled SMS data, MiniLM checks on ../shared/data where it exists.
#
#   ./scripts/test.sh                      # the default suite (what CI runs)
#   ./scripts/test.sh --run-slow           # also the slow checks: every offline recipe trained briefly
#   ./scripts/test.sh -k export -x         # extra pytest arguments pass through
#   ./scripts/test.sh --randomly-seed=1234  # repeat the test order a run printed (-p no:randomly: file order)
#
# Tests run in random order (pytest-randomly; the seed is printed at the top) and are hermetic:
# every cache (Hugging Face, datasets, tfbert's, Keras', matplotlib's, pip's, uv's) goes into one
# temporary directory, removed at the end (TMPDIR too); nothing is written into HOME or the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
TFBERT_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tfbert-tests.XXXXXX")
export TFBERT_TEST_TMP
trap 'rm -rf "$TFBERT_TEST_TMP"' EXIT
# Temporary files too (pytest's tmp_path, the sources autograph generates for every function it
# converts): they go with the rest at the end.
mkdir "$TFBERT_TEST_TMP/tmp"
export TMPDIR="$TFBERT_TEST_TMP/tmp"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$TFBERT_TEST_TMP/pip}" UV_CACHE_DIR="${UV_CACHE_DIR:-$TFBERT_TEST_TMP/uv}"
# pip runs `rustc --version` for its User-Agent; where rustc is a rustup shim, that writes
# ~/.rustup/settings.toml unless RUSTUP_HOME points elsewhere (the toolchain is not needed).
RUSTUP_HOME="$TFBERT_TEST_TMP/rustup" bash scripts/setup_env.sh requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONDONTWRITEBYTECODE=1
# Two worker processes, a test file each at a time (module fixtures are built once per file):
# much of the suite waits on subprocesses, imports and the tokenizer's tables, not on both cores.
# TEST_WORKERS=0 runs in this process (e.g. for pdb).
WORKERS=${TEST_WORKERS:-2}
# One compute thread per TensorFlow (and torch) process: with a worker per core, pools as wide as
# the machine in every worker and in the tools they start oversubscribe the cores, and the idle
# threads' spinning takes time from the other worker. Set the variables to override.
if [ "$WORKERS" -ge 2 ]; then
  export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-1}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi
# --no-loadscope-reorder: files go out in the order tests/conftest.py gives them (longest first).
.venv/bin/python -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
