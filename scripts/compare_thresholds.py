#!/usr/bin/env python3
"""Compare multi-label decision rules on one trained model: fixed, global and per-label thresholds.

    python scripts/compare_thresholds.py runs/goemotions_minilm_dev/model [--split test] \
        [--floors 1,5,10,20,50,100] [--labels] [--json OUT]

Choosing ``task.threshold_rule`` and ``task.threshold_min_support`` needs no retraining: the
thresholds only read the model's probabilities. This script rebuilds the run's splits from the
model directory's config (the same files, fractions and seed, so the same carved validation and
test rows), predicts validation and `--split` once, then scores each rule on `--split` with its
thresholds tuned on validation alone: a fixed 0.5, the GoEmotions paper's fixed 0.3, one global
threshold (best validation micro F1) and per-label thresholds at each support floor. ``--labels``
adds each label's F1 under the model's own rule beside its training frequency, which shows where
macro F1 is lost. Never point `--split` at data used to choose anything you will report on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a multi-label model directory written by training (RUN/model)")
    parser.add_argument("--split", default="test", help="the split to score (default: test)")
    parser.add_argument("--floors", default="1,5,10,20,50,100",
                        help="support floors (task.threshold_min_support) to try with per-label thresholds")
    parser.add_argument("--labels", action="store_true", help="print each label's F1 under the model's own rule")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from tfbert.cli import common

    common.quiet_libraries(False)
    from tfbert.errors import ConfigError
    from tfbert.evaluation.predict import predict_logits
    from tfbert.modeling.saving import load_pretrained
    from tfbert.tasks import get_task
    from tfbert.tasks.multi_label_classification.task import (multi_label_metrics, tune_label_thresholds,
                                                              tune_threshold)

    loaded = load_pretrained(args.model)
    config = loaded.config
    if config.task.type != "multi_label_classification":
        raise ConfigError(f"{args.model}: task.type is {config.task.type}, not multi_label_classification")
    try:
        floors = [int(f) for f in args.floors.split(",")]
    except ValueError:
        raise ConfigError(f"--floors: expected comma-separated integers, got {args.floors!r}") from None
    data = get_task(config.task.type).load_data(config, loaded.tokenizer, seed=config.training.seed,
                                                label_names=loaded.label_names)
    for split in ("validation", args.split):
        if split not in data.splits:
            raise ConfigError(f"{args.model}: its config yields no {split} split (splits: {', '.join(data.splits)})")
    batch, pad = config.training.per_device_eval_batch_size, loaded.tokenizer.pad_token_id
    val, test = data.splits["validation"], data.splits[args.split]
    p_val = 1 / (1 + np.exp(-predict_logits(loaded.model, val, batch, pad)))
    p_test = 1 / (1 + np.exp(-predict_logits(loaded.model, test, batch, pad)))
    names = data.label_names
    global_t = tune_threshold(val.labels, p_val)
    rules = {"fixed 0.5": np.full(len(names), 0.5), "fixed 0.3": np.full(len(names), 0.3),
             f"global (tuned: {global_t:.2f})": np.full(len(names), global_t)}
    for floor in floors:
        rules[f"per label, floor {floor}"] = tune_label_thresholds(val.labels, p_val, global_t, floor)

    def score(gold, probabilities, thresholds):
        return multi_label_metrics(gold, (probabilities >= thresholds[None, :]).astype(np.float32), names)

    results = {}
    print(f"{args.model}: thresholds tuned on validation ({len(val)} rows), scored on {args.split} ({len(test)} rows)")
    print(f"| rule | labels off the global threshold | {args.split} micro F1 | {args.split} macro F1 | "
          "validation macro F1 (tuned on itself) |")
    print("|---|---|---|---|---|")
    for rule, thresholds in rules.items():
        on_test, on_val = score(test.labels, p_test, thresholds), score(val.labels, p_val, thresholds)
        own = int((thresholds != global_t).sum()) if rule.startswith("per label") else 0
        results[rule] = {"thresholds": thresholds.tolist(), "micro_f1": on_test["micro_f1"],
                         "macro_f1": on_test["macro_f1"], "validation_macro_f1": on_val["macro_f1"]}
        print(f"| {rule} | {own} | {on_test['micro_f1']:.4f} | {on_test['macro_f1']:.4f} | {on_val['macro_f1']:.4f} |")

    if args.labels:
        own = np.asarray(config.task.decision_thresholds(len(names)), np.float64)
        if config.task.threshold is None and config.task.threshold_rule == "per_label":
            own = tune_label_thresholds(val.labels, p_val, global_t, config.task.threshold_min_support)
        elif config.task.threshold is None:
            own = np.full(len(names), global_t)
        per_class = score(test.labels, p_test, own)["per_class"]
        train_counts = data.splits["train"].labels.sum(axis=0) if "train" in data.splits else np.zeros(len(names))
        print(f"\nper label, the model's rule ({config.task.threshold_rule if config.task.threshold is None else 'fixed'}),"
              " by training frequency:")
        print(f"| label | training examples | validation positives | threshold | {args.split} support | precision | "
              "recall | F1 |")
        print("|---|---|---|---|---|---|---|---|")
        for j in np.argsort(-train_counts, kind="stable"):
            s = per_class[names[j]]
            print(f"| {names[j]} | {int(train_counts[j])} | {int(val.labels[:, j].sum())} | {own[j]:.2f} | "
                  f"{s['support']} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
        results["per_label"] = {names[j]: {**per_class[names[j]], "train": int(train_counts[j]),
                                           "threshold": float(own[j])} for j in range(len(names))}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    from tfbert.cli import common

    sys.exit(common.run(main))
