"""Training throughput of a recipe with each padding mode: examples/s, real and padded tokens/s.

    .venv/bin/python benchmarks/train_throughput.py --config configs/sms_spam_minilm.yaml \
        --examples 1024 --epochs 3 --modes bucket dynamic max_length

Each mode trains the same sample for `--epochs` epochs; the first epoch (graph tracing, warm-up)
is reported separately and the later ones are timed. Real tokens are the non-padding tokens the
model saw; padded tokens include padding. Results print as a Markdown table (and JSON with --json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tf_keras  # noqa: E402

from tfbert.cli.common import quiet_libraries  # noqa: E402
from tfbert.config import load_config  # noqa: E402
from tfbert.data.encoding import select_rows  # noqa: E402
from tfbert.data.pipeline import make_dataset, padding_stats  # noqa: E402
from tfbert.run.experiment import build_experiment  # noqa: E402


class EpochTimer(tf_keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def measure(config_path: str, overrides: list[str], mode: str, examples: int, epochs: int, seed: int) -> dict:
    config = load_config(config_path, [*overrides, f"data.padding={mode}", "export.at_end=false",
                                       "training.tensorboard=false", f"training.num_train_epochs={epochs}",
                                       "training.output_dir=/tmp/tfbert-bench"])
    experiment = build_experiment(config)
    train = experiment.data.splits["train"]
    pick = np.sort(np.random.default_rng(seed).permutation(len(train))[:examples])
    train = select_rows(train, pick)
    experiment.data.splits["train"] = train
    batch = experiment.plan.global_batch_size
    drop = mode == "max_length"
    d = config.data
    # One reshuffled pass per epoch over the subset (the run's plan was made for the whole split).
    dataset = make_dataset(train, batch, mode, d.max_seq_length, experiment.tokenizer.pad_token_id, shuffle=True,
                           seed=config.training.seed, drop_remainder=drop, bucket_boundaries=d.bucket_boundaries,
                           max_examples_per_pack=d.max_examples_per_pack)
    stats = padding_stats(train, batch, mode, config.data.max_seq_length, config.data.bucket_boundaries)
    used = (len(train) // batch) * batch if drop else len(train)
    timer = EpochTimer()
    experiment.model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    steady = statistics.median(timer.seconds[1:]) if len(timer.seconds) > 1 else timer.seconds[0]
    return {
        "mode": mode, "examples": used, "batch_size": batch, "max_seq_length": config.data.max_seq_length,
        "first_epoch_s": round(timer.seconds[0], 2), "epoch_s": round(steady, 2),
        "examples_per_s": round(used / steady, 1),
        "real_tokens_per_s": round(stats["real_tokens"] / steady, 0),
        "padded_tokens_per_s": round(stats["padded_tokens"] / steady, 0),
        "padding_efficiency": round(stats["padding_efficiency"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sms_spam_minilm.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--examples", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["bucket", "dynamic", "max_length"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    quiet_libraries()
    import tensorflow as tf

    rows = [measure(args.config, args.overrides, m, args.examples, args.epochs, args.seed) for m in args.modes]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs; tensorflow {tf.__version__}")
    print("| padding | examples | first epoch (s) | epoch (s) | examples/s | real tokens/s | padded tokens/s | real/padded |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['examples']} | {r['first_epoch_s']} | {r['epoch_s']} | {r['examples_per_s']} | "
              f"{r['real_tokens_per_s']:.0f} | {r['padded_tokens_per_s']:.0f} | {r['padding_efficiency']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
