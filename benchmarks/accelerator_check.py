"""Training throughput on the GPUs of this machine: mirrored over all of them, by precision, padding and XLA.

    scripts/accelerator_check.sh [--out DIR] [--steps N] [--budget-s S]

Every configuration trains the bundled all-MiniLM-L6-v2 on SST-2 sentences (``../shared/data/sst2``,
else the repository's SMS spam file), ``max_seq_length`` 128, 32 examples per replica per step,
under ``tf.distribute.MirroredStrategy()`` over every visible GPU:

    precision {float32, mixed_float16} x padding {packed, bucket, max_length} x XLA {off, on}

Real (non-pad) tokens/s and examples/s over the steps after the first few (which include tracing
and XLA compilation), time to the first step, and peak GPU memory (``tf.config.experimental.
get_memory_info``) are written to ``DIR/accelerator_check.json`` and a short Markdown table
``DIR/accelerator_check.md``. Configurations run in one process, most informative first; when the
time budget (default 8 minutes) would be exceeded, the rest are listed as skipped.

Without a GPU it stops at once with one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: (precision, padding, xla), most informative first: the budget may cut the tail.
CONFIGS = [
    ("float32", "bucket", False), ("mixed_float16", "bucket", False),
    ("mixed_float16", "packed", False), ("float32", "packed", False),
    ("mixed_float16", "max_length", False), ("float32", "max_length", False),
    ("mixed_float16", "packed", True), ("float32", "packed", True),
    ("mixed_float16", "max_length", True), ("float32", "max_length", True),
    ("mixed_float16", "bucket", True), ("float32", "bucket", True),
]
NO_GPU = ("error: accelerator_check: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') "
          "is empty{hint}); it measures GPU training and was not run")


def _no_gpu_hint(tf) -> str:
    if not tf.test.is_built_with_cuda():
        return "; this TensorFlow build has no CUDA support"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "; CUDA_VISIBLE_DEVICES hides every GPU"
    return "; with pip, CUDA's libraries come with tensorflow[and-cuda]"


def _import_tf_quietly():
    """``import tensorflow`` and list the GPUs with stderr silenced: TF's C++ start-up lines
    (cuInit failures included) would otherwise bury the one line that says why nothing ran."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf, gpus


def _data_file(out: Path, examples: int = 16384) -> tuple[list[str], str]:
    """Overrides pointing tfbert at the workload's training file (an SST-2 sample written to `out`)."""
    sst2 = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
    if sst2.is_file():
        # A seeded sample: tokenizing all 67k sentences for each of 12 configurations wastes the budget.
        lines = sst2.read_text(encoding="utf-8").splitlines()
        body = lines[1:]
        random.Random(0).shuffle(body)
        sample = out / "sst2_sample.tsv"
        sample.write_text("\n".join([lines[0], *body[:examples]]) + "\n", encoding="utf-8")
        return [f"data.train_file={sample}", "data.format=tsv", "data.text_column=sentence",
                "data.label_column=label"], f"SST-2 ({min(examples, len(body)):,} sentences of train.tsv)"
    sms = ROOT / "data" / "sms_spam" / "SMSSpamCollection"
    return [f"data.train_file={sms}", "data.format=tsv", "data.has_header=false", "data.column_names=[label, text]",
            "data.text_column=text", "data.label_column=label"], "SMS spam"


def _peak_memory_mib(tf, gpus: list) -> float:
    peak = 0.0
    for index in range(len(gpus)):
        try:
            peak = max(peak, tf.config.experimental.get_memory_info(f"GPU:{index}")["peak"] / 2 ** 20)
        except (ValueError, RuntimeError):
            pass
    return peak


def _reset_peak_memory(tf, gpus: list) -> None:
    for index in range(len(gpus)):
        try:
            tf.config.experimental.reset_memory_stats(f"GPU:{index}")
        except (ValueError, RuntimeError):
            pass


def run_config(tf, strategy, data_set: list[str], precision: str, padding: str, xla: bool, steps: int,
               workdir: Path) -> dict:
    """Train `steps` updates of one configuration; throughput over the steps after the first few."""
    import tf_keras
    from compare_training import StepLog, _counted_ids, _keras_step_callback, _tf_counting
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    replicas = strategy.num_replicas_in_sync
    config = load_config(None, [
        *data_set, "data.max_seq_length=128", f"data.padding={padding}", f"precision.policy={precision}",
        "training.per_device_train_batch_size=32", f"training.max_steps={steps}", "training.tensorboard=false",
        f"training.output_dir={workdir / 'run'}", "training.overwrite_output_dir=true", "export.at_end=false",
    ])
    tf_keras.backend.clear_session()
    started = time.time()
    experiment = build_experiment(config, strategy)
    model = experiment.model
    model.jit_compile = xla
    log = StepLog()
    packed = experiment.plan.packing is not None
    dataset = _tf_counting(tf, experiment.train_dataset.repeat(), log, _counted_ids(packed), packed=packed)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0,
              callbacks=[_keras_step_callback(tf_keras.callbacks.Callback, log)])
    # The first steps trace (and with XLA compile each new shape): time the rest.
    warm = min(5, steps - 1)
    log.steps = log.steps[warm - 1:] if warm > 0 else log.steps
    summary = log.summary({"spawn_time": started})
    seconds = summary["timed_seconds"]
    return {"precision": precision, "padding": padding, "xla": xla, "replicas": replicas,
            "steps": steps, "timed_steps": summary["timed_steps"],
            "examples_per_s": summary["examples"] / seconds, "real_tokens_per_s": summary["real_tokens"] / seconds,
            "padded_tokens_per_s": summary["padded_tokens"] / seconds,
            "real_fraction": summary["real_tokens"] / max(1, summary["padded_tokens"]),
            "time_to_first_step_s": summary["time_to_first_step_s"], "wall_s": time.time() - started}


def markdown(results: list[dict], header: str) -> str:
    lines = [header, "", "| precision | padding | XLA | replicas | examples/s | real tokens/s | real/padded "
             "| time to first step (s) | peak GPU memory (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r or "skipped" in r:
            why = r.get("error") or r["skipped"]
            lines.append(f"| {r['precision']} | {r['padding']} | {'on' if r['xla'] else 'off'} | | "
                         f"{'failed' if 'error' in r else 'skipped'}: {why} | | | | |")
            continue
        lines.append(f"| {r['precision']} | {r['padding']} | {'on' if r['xla'] else 'off'} | {r['replicas']} | "
                     f"{r['examples_per_s']:,.1f} | {r['real_tokens_per_s']:,.0f} | {r['real_fraction']:.2f} | "
                     f"{r['time_to_first_step_s']:.1f} | {r['peak_gpu_memory_mib']:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "accelerator_check"))
    parser.add_argument("--steps", type=int, default=60, help="optimizer updates per configuration")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="start no configuration after this many seconds (whole check: under 8 minutes)")
    args = parser.parse_args(argv)
    started = time.time()

    tf, gpus = _import_tf_quietly()
    if not gpus:
        print(NO_GPU.format(hint=_no_gpu_hint(tf)), file=sys.stderr)
        return 2
    for gpu in gpus:
        # Peak memory per configuration means something only if TF does not grab the whole GPU.
        tf.config.experimental.set_memory_growth(gpu, True)
    strategy = tf.distribute.MirroredStrategy()
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_set, data_name = _data_file(out)
    results: list[dict] = []
    slowest = 0.0
    for precision, padding, xla in CONFIGS:
        row = {"precision": precision, "padding": padding, "xla": xla}
        elapsed = time.time() - started
        if elapsed + slowest > args.budget_s:
            results.append(dict(row, skipped=f"time budget ({args.budget_s:.0f} s)"))
            continue
        _reset_peak_memory(tf, gpus)
        try:
            result = run_config(tf, strategy, data_set, precision, padding, xla, args.steps, out)
            result["peak_gpu_memory_mib"] = _peak_memory_mib(tf, gpus)
            slowest = max(slowest, result["wall_s"])
        except Exception as exc:  # noqa: BLE001 - one failing configuration must not hide the others
            result = dict(row, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")
        results.append(result)
        print(json.dumps(result), flush=True)
    header = (f"Accelerator check: {len(gpus)} GPU(s) ({', '.join(sorted(set(names)))}), MirroredStrategy, "
              f"{data_name}, MiniLM-L6, max_seq_length 128, 32 examples per replica per step, {args.steps} steps "
              f"per configuration (first {min(5, args.steps - 1)} not timed); TensorFlow {tf.__version__}; "
              f"{time.time() - started:.0f} s in all.")
    (out / "accelerator_check.json").write_text(json.dumps(
        {"gpus": names, "data": data_name, "steps": args.steps, "tensorflow": tf.__version__, "results": results},
        indent=1))
    table = markdown(results, header)
    (out / "accelerator_check.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
