#!/usr/bin/env bash
# GPU training throughput check (benchmarks/accelerator_check.py): mirrored over every GPU,
# float32 vs mixed_float16, packed vs bucket vs max_length, XLA on and off; at most 8 minutes.
# Writes runs/accelerator_check/accelerator_check.{json,md} (--out DIR to change). Without a GPU it
# stops with one line on stderr and exit code 2.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The script stops starting configurations at its budget; the timeout is the hard ceiling.
exec timeout --signal=INT --kill-after=20 480 "$python" benchmarks/accelerator_check.py "$@"
