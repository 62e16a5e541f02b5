#!/usr/bin/env bash
# Does a tfbert model directory work in transformers 5 (which has no TensorFlow)?
#
#   scripts/check_portability.sh RUN [RUN ...]   check RUN/model against RUN/saved_model
#   scripts/check_portability.sh --setup-only    only build the transformers-5 venv
#
# Builds once (and then reuses) a separate venv, benchmarks/.venvs/transformers5: CPU torch 2.13.0,
# installed first and alone so nothing can pull a CUDA build, then the newest transformers 5.x.
# `--rebuild` (or deleting the folder) takes a newer 5.x. tools/check_portability.py then loads
# each RUN/model there with AutoModelFor... and pipeline(...) and compares with the SavedModel's
# outputs, computed here in tfbert's venv. Exit 0 only when every check passes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${TFBERT_PORTABILITY_VENV:-benchmarks/.venvs/transformers5}
TFBERT_PYTHON=${TFBERT_PYTHON:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
# Another 5.x for a second venv, e.g. TFBERT_PORTABILITY_TRANSFORMERS='transformers==5.2.0' with
# TFBERT_PORTABILITY_VENV=benchmarks/.venvs/transformers5.2 (5.2 is the last with the QA pipeline).
TRANSFORMERS=${TFBERT_PORTABILITY_TRANSFORMERS:-'transformers>=5,<6'}
# One pip call per line; .ready holds these lines, so a venv made from another list is rebuilt.
SPEC="torch==2.13.0"$'\n'"$TRANSFORMERS safetensors numpy"

setup_only=0 rebuild=0 args=()
for arg in "$@"; do
  case "$arg" in
    --setup-only) setup_only=1 ;;
    --rebuild) rebuild=1 ;;
    *) args+=("$arg") ;;
  esac
done
if [ "$setup_only" = 0 ] && [ "${#args[@]}" = 0 ]; then
  echo "usage: scripts/check_portability.sh [--rebuild] [--setup-only] RUN [RUN ...]" >&2
  exit 2
fi

build_venv() {
  echo "[setup] building $VENV (CPU torch 2.13.0, then $TRANSFORMERS; a few minutes) ..." >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  local line
  while IFS= read -r line; do
    # shellcheck disable=SC2086  # each line is several requirement words
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q $line \
        2> >(grep -v "^WARNING: Location" >&2); then
      echo "error: could not build $VENV: pip install $line failed" >&2
      return 1
    fi
  done <<< "$SPEC"
  "$VENV/bin/python" - > "$VENV/versions.txt" <<'EOF'
from importlib.metadata import version
for name in ("torch", "transformers", "tokenizers", "huggingface-hub", "safetensors", "numpy"):
    print(f"{name}=={version(name)}")
EOF
  printf '%s\n' "$SPEC" > "$VENV/.ready"
  echo "[setup] $VENV: $(tr '\n' ' ' < "$VENV/versions.txt")" >&2
}

mkdir -p "$(dirname "$VENV")"
(
  # Two checkers started at once (e.g. test workers) must not build the same venv twice.
  flock 9
  if [ "$rebuild" = 1 ] || [ ! -f "$VENV/.ready" ] || [ "$(cat "$VENV/.ready")" != "$SPEC" ]; then
    build_venv || exit 2
  fi
) 9> "$VENV.lock" || exit 2
if ! "$VENV/bin/python" -c "import torch, transformers" 2>/dev/null; then
  echo "error: $VENV is broken (torch/transformers do not import); rerun with --rebuild" >&2
  exit 2
fi
if [ "$setup_only" = 1 ] && [ "${#args[@]}" = 0 ]; then
  echo "$VENV ready: $(tr '\n' ' ' < "$VENV/versions.txt")"
  exit 0
fi
exec "$TFBERT_PYTHON" tools/check_portability.py --hf-python "$VENV/bin/python" "${args[@]}"
