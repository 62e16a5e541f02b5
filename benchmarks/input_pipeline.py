"""The training input pipeline alone: how many batches per second `tf.data` delivers, per padding mode.

    .venv/bin/python benchmarks/input_pipeline.py [--config configs/sms_spam_minilm.yaml] [--batches 400]
        [--modes bucket packed max_length] [--set KEY=VALUE ...]

Builds the experiment as `tools/train.py` would (tokenization included, not timed), then iterates
`Experiment.train_stream()` — the exact stream `fit` reads — without the model: the first batch
is left out (tracing), the next `--batches` are timed. Then it times `--steps` training steps of
the same model on the same stream, so the two rates come from one process on one machine. The
pipeline is out of the way when it runs at least 10x the training step rate. Prints a Markdown
table (and writes JSON with --json).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfbert.cli.common import quiet_libraries  # noqa: E402
from tfbert.config import load_config  # noqa: E402
from tfbert.run.experiment import build_experiment  # noqa: E402


def measure(config_path: str, overrides: list[str], mode: str, batches: int, steps: int) -> dict:
    config = load_config(config_path, [*overrides, f"data.padding={mode}", "training.output_dir=/tmp/tfbert-pipeline-bench"])
    experiment = build_experiment(config)
    stream = iter(experiment.train_stream())
    next(stream)
    start = time.perf_counter()
    examples = 0
    for _ in range(batches):
        features, _labels = next(stream)
        examples += int(features["example_ids"].numpy().max(axis=1).clip(min=0).sum()) if mode == "packed" \
            else int(features["input_ids"].shape[0])
    pipeline_s = time.perf_counter() - start
    # Training steps on the same stream: the rate the pipeline has to keep ahead of.
    experiment.model.fit(experiment.train_stream(), steps_per_epoch=2, epochs=1, verbose=0)  # tracing
    start = time.perf_counter()
    experiment.model.fit(experiment.train_stream(), steps_per_epoch=steps, epochs=1, verbose=0)
    train_s = time.perf_counter() - start
    return {"mode": mode, "pipeline_batches_per_s": batches / pipeline_s, "pipeline_examples_per_s": examples / pipeline_s,
            "train_steps_per_s": steps / train_s, "ratio": (batches / pipeline_s) / (steps / train_s)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "sms_spam_minilm.yaml"))
    parser.add_argument("--modes", nargs="+", default=["bucket", "packed", "max_length"])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json")
    args = parser.parse_args()
    quiet_libraries()
    os.chdir(ROOT)  # recipes use paths relative to the project root
    rows = [measure(args.config, args.overrides, mode, args.batches, args.steps) for mode in args.modes]
    print(f"input pipeline alone vs training steps, {Path(args.config).name}"
          + (f" ({', '.join(args.overrides)})" if args.overrides else "") + "\n")
    print("| padding | pipeline batches/s | pipeline examples/s | training steps/s | pipeline / training |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['pipeline_batches_per_s']:,.0f} | {r['pipeline_examples_per_s']:,.0f} | "
              f"{r['train_steps_per_s']:.2f} | {r['ratio']:,.0f}× |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
