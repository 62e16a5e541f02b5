#!/usr/bin/env bash
# The demo: set up, fine-tune the bundled all-MiniLM-L6-v2 on the SMS Spam Collection, evaluate on a
# held-out stratified 20%, export a raw-string SavedModel and classify a few unseen messages.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh 2>&1 | grep -v "^WARNING: Location" || true
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TF_CPP_MIN_LOG_LEVEL=2
# TensorFlow's C++ start-up lines (CPU features, no CUDA) are noise in a demo; errors still show.
exec 2> >(grep -v -E '^(I0000|W0000|E0000|WARNING: All log messages before absl)' >&2)
RUN=${RUN:-runs/sms_spam_minilm}
.venv/bin/python tools/train.py --config configs/sms_spam_minilm.yaml \
  --set training.output_dir="$RUN" --set training.overwrite_output_dir=true "$@"
echo
echo "== Predictions of the exported SavedModel on unseen messages (data/sms_spam/unseen.txt) =="
.venv/bin/python tools/predict.py --saved-model "$RUN/saved_model" --file data/sms_spam/unseen.txt
echo
echo "Model card: $RUN/README.md   metrics: $RUN/eval_results.json   SavedModel: $RUN/saved_model"
echo "Report (figures, plan, hyperparameters; open in a browser): $RUN/report.html"
echo "The model directory is a transformers directory; without tfbert:"
echo "  .venv/bin/python -c \"from transformers import pipeline; print(pipeline('text-classification', model='$RUN/model', framework='tf', dtype=None, model_kwargs={'use_safetensors': False})('WIN a FREE phone'))\""
