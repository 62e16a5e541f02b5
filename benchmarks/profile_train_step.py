"""Where a tfbert training step spends its time, per padded width (the profile behind docs/benchmarks.md).

    .venv/bin/python benchmarks/profile_train_step.py [--examples 4096] [--repeats 8] [--set KEY=VALUE ...]

Builds tfbert's default experiment on the same SST-2 sample as `compare_training.py`, then times on
one real batch of 32 per bucket width: the forward pass, forward + backward (embedding gradient
left as IndexedSlices, and converted to dense as `TaskModel._gradients` does), the whole compiled
train step, and the optimizer's `apply_gradients` alone (tfbert's fused Adam and tf_keras' stock
Adam, both with global-norm clipping). Also prints the padding efficiency of bucket ladders.
Medians of `--repeats` calls after two warm-up calls; milliseconds.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

import compare_training as ct  # noqa: E402
from tfbert.config import load_config  # noqa: E402
from tfbert.data.pipeline import default_bucket_boundaries  # noqa: E402
from tfbert.run.experiment import build_experiment  # noqa: E402

OLD_LADDER = [16, 24, 32, 48, 64, 96, 128]
SHORT_LADDER = [8, 12, 16, 24, 32, 48, 64, 96, 128]


def ladder_efficiency(lengths: np.ndarray, ladder: list[int]) -> float:
    padded = sum(min(b for b in ladder if b >= n) for n in lengths)
    return float(lengths.sum() / padded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. precision.policy=mixed_bfloat16")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tfbert-profile-"))
    texts, labels = ct._read_tsv(Path(args.data))
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    pick = order[:args.examples]
    ct._write_tsv(work / "train.tsv", [texts[i] for i in pick], [labels[i] for i in pick])
    config = load_config(None, [
        f"data.train_file={work / 'train.tsv'}", "data.format=tsv", "data.text_column=sentence",
        "data.label_column=label", "training.num_train_epochs=1", f"training.output_dir={work / 'run'}",
        "training.tensorboard=false", "export.at_end=false", *args.overrides])
    experiment = build_experiment(config)
    model = experiment.model
    split = experiment.data.splits["train"]
    lengths = np.diff(split.features["input_ids"][1])
    print(f"lengths (tokens incl. [CLS]/[SEP]): mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"p90 {np.percentile(lengths, 90):.0f}, max {lengths.max()}; under 8: {(lengths < 8).mean():.0%}")
    for name, ladder in (("16, 24, 32, 48, ... (old default)", OLD_LADDER), ("8, 12, 16, 24, ...", SHORT_LADDER),
                         ("current default", default_bucket_boundaries(128))):
        print(f"ladder {name}: real/padded tokens {ladder_efficiency(lengths, ladder):.3f}")

    batches = {}
    for x, y in experiment.train_dataset.take(experiment.steps_per_epoch):  # one epoch
        width = int(x["input_ids"].shape[1])
        if int(x["input_ids"].shape[0]) == 32 and width not in batches:
            batches[width] = (x, y)

    def timed(fn, *a):
        fn(*a)
        fn(*a)
        samples = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn(*a))
            samples.append(time.perf_counter() - start)
        return statistics.median(samples) * 1000

    def grads(x, y, dense):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True))
        out = tape.gradient(loss, model.trainable_variables)
        if dense:
            return [tf.reduce_sum(tf.convert_to_tensor(g)) for g in out if g is not None]
        return [tf.reduce_sum(g.values if isinstance(g, tf.IndexedSlices) else g) for g in out if g is not None]

    forward = tf.function(lambda x, y: model(x, training=True), reduce_retracing=True)
    sparse = tf.function(lambda x, y: grads(x, y, False), reduce_retracing=True)
    dense = tf.function(lambda x, y: grads(x, y, True), reduce_retracing=True)
    train_function = model.make_train_function()
    print("| width | forward | fwd+bwd (sparse emb. grad) | fwd+bwd (dense emb. grad) | whole train step |")
    print("|---|---|---|---|---|")
    for width in sorted(batches):
        x, y = batches[width]
        iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
        print(f"| {width} | {timed(forward, x, y):.1f} | {timed(sparse, x, y):.1f} | {timed(dense, x, y):.1f} | "
              f"{timed(lambda: train_function(iterator)):.1f} |")

    zeros = [tf.zeros_like(v) for v in model.trainable_variables]
    fused = model.optimizer
    fused.build(model.trainable_variables)
    stock = tf_keras.optimizers.Adam(learning_rate=5e-5, global_clipnorm=1.0, jit_compile=False)
    stock.build(model.trainable_variables)
    for name, optimizer in (("tfbert fused Adam", fused), ("tf_keras stock Adam", stock)):
        apply = tf.function(lambda opt=optimizer: opt.apply_gradients(zip(zeros, model.trainable_variables)))
        n = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        print(f"apply_gradients alone, {name}, {n:,} parameters, global-norm clipping: {timed(apply):.1f} ms")


if __name__ == "__main__":
    main()
