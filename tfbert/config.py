"""Typed experiment config: dataclasses, YAML loading, ``--set`` overrides, validation.

Overrides apply in a fixed order: dataclass defaults, then the YAML file, then each
``--set key=value`` in the order given, then validation of the whole tree. Field names follow
Hugging Face ``TrainingArguments`` where one exists.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from tfbert.errors import ConfigError


@dataclass
class ModelConfig:
    """Which pretrained backbone and how the task head reads it."""

    name_or_path: str = "bundled:all-MiniLM-L6-v2"
    pooling: Literal["cls", "pooler", "mean"] = "pooler"
    classifier_dropout: float = 0.1


@dataclass
class DataConfig:
    """Where the examples come from and how they are tokenized and batched."""

    train_file: Optional[str] = None
    validation_file: Optional[str] = None
    test_file: Optional[str] = None
    format: Literal["auto", "csv", "tsv", "json", "jsonl", "conll", "squad"] = "auto"
    has_header: bool = True
    column_names: Optional[list[str]] = None
    text_column: str = "text"
    text_pair_column: Optional[str] = None
    label_column: str = "label"
    labels: Optional[list[str]] = None
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    tag_scheme: Literal["iob1", "iob2", "bioes"] = "iob2"
    label_all_subwords: bool = False
    train_articles: Optional[str] = None
    validation_articles: Optional[str] = None
    test_articles: Optional[str] = None
    doc_stride: int = 128
    max_query_length: int = 64
    validation_split: float = 0.0
    test_split: float = 0.0
    max_seq_length: int = 128
    #: ``packed``: several examples per row of max_seq_length tokens, each attending only to
    #: itself (tfbert.data.packing); tpu and ipu strategies pack when this is left at ``bucket``.
    padding: Literal["bucket", "dynamic", "max_length", "packed"] = "bucket"
    bucket_boundaries: Optional[list[int]] = None
    #: ``packed``: the most examples in one row (the width of the per-example index tensors).
    max_examples_per_pack: int = 32
    cache_dir: Optional[str] = None
    # Already-tokenized TFRecords written by tools/make_tfrecords.py (a directory or gs:// prefix):
    # used instead of tokenizing the train file (and any split they hold that has no file here).
    tfrecords: Optional[str] = None


@dataclass
class TaskConfig:
    """What is predicted."""

    type: Literal["sequence_classification", "token_classification", "question_answering"] = "sequence_classification"
    num_labels: Optional[int] = None
    n_best_size: int = 20
    max_answer_length: int = 30


@dataclass
class OptimizerConfig:
    """Optimizer, learning-rate schedule and gradient clipping."""

    name: Literal["adamw", "adam"] = "adamw"
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler_type: Literal["linear", "polynomial", "constant"] = "linear"
    power: float = 1.0
    lr_end: float = 0.0
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: Optional[float] = 1.0
    #: Layer-wise learning-rate decay (ELECTRA uses 0.8): the head at learning_rate, each encoder
    #: layer below it one more factor, the embeddings lowest; 1.0 is off.
    layerwise_lr_decay: float = 1.0
    #: Peak rate of the head (tfbert's classifier / span / token head and the pooler); null: learning_rate.
    head_learning_rate: Optional[float] = None


@dataclass
class PrecisionConfig:
    """Keras mixed-precision policy; the head's output is always float32.

    ``auto`` picks by the hardware when the run starts (`tfbert.training.precision.resolve_policy`):
    mixed_bfloat16 on TPUs and bfloat16-capable CPUs, mixed_float16 on tensor-core GPUs, else float32.
    """

    policy: Literal["float32", "mixed_float16", "mixed_bfloat16", "auto"] = "float32"


@dataclass
class TrainingConfig:
    """The training loop: epochs, batch sizes, freezing, checkpoints, logging."""

    output_dir: str = "runs/experiment"
    overwrite_output_dir: bool = False
    num_train_epochs: float = 3.0
    #: Optimizer updates to run; > 0 overrides num_train_epochs (as in Hugging Face's TrainingArguments).
    max_steps: int = -1
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    seed: int = 42
    freeze: Literal["none", "bottom", "backbone"] = "none"
    freeze_layers: int = 0
    steps_per_execution: int = 1
    save_total_limit: int = 2
    load_best_model_at_end: bool = True
    metric_for_best_model: Literal[
        "val_accuracy", "val_macro_f1", "val_loss", "val_f1", "val_exact_match", "val_token_accuracy",
        "accuracy", "loss",
    ] = "val_accuracy"
    early_stopping_patience: Optional[int] = None
    #: Write a resumable backup every N optimizer updates ("epoch": only at epoch ends). A backup
    #: is also written at every epoch end that falls on an update boundary, and on SIGTERM.
    save_steps: Union[int, Literal["epoch"]] = 500
    #: ``auto``: rerunning on an unfinished run's output_dir continues it; ``never``: refuse;
    #: or the path of a backup (``RUN/checkpoints/step-N``) or run directory to continue from.
    resume: str = "auto"
    tensorboard: bool = True
    #: Every N optimizer updates: mean loss, learning rate, gradient norm and real tokens/s go to
    #: steps.jsonl/.csv and TensorBoard (Hugging Face's name; its default, 500, would give the
    #: demo's ~260 updates no point at all; 10 gives ~13 points per epoch there).
    logging_steps: int = 10
    #: 0 silent; 1 Keras' progress bar; 2 the progress bar (with ETA) on a terminal, otherwise one
    #: line per logging_steps and one per epoch (log files).
    verbose: int = 2


@dataclass
class ExportConfig:
    """The SavedModel written at the end of training."""

    at_end: bool = True
    dir_name: str = "saved_model"


@dataclass
class DistributionConfig:
    """Which `tf.distribute` strategy runs the recipe, and that hardware's settings.

    ``--strategy`` on the command line overrides ``strategy``. Batch sizes stay per replica
    (``training.per_device_train_batch_size``); see `tfbert.training.batch_plan.BatchPlan`.
    """

    strategy: Literal["default", "mirrored", "multiworker", "tpu", "ipu", "auto"] = "default"
    # mirrored: devices to mirror over (default: every local GPU, else the CPU); naming more
    # /cpu:N than exist splits the CPU into logical devices (for trying it out).
    devices: Optional[list[str]] = None
    # multiworker: collective implementation across workers (TF_CONFIG describes the cluster).
    communication: Literal["auto", "ring", "nccl"] = "auto"
    # tpu: name, grpc://host:port or "local" (a TPU VM); default $TPU_NAME. Zone/project as gcloud.
    tpu: Optional[str] = None
    tpu_zone: Optional[str] = None
    tpu_project: Optional[str] = None
    # ipu (Graphcore): IPUs per model replica (> 1 only when pipelined) and data-parallel replicas.
    ipus_per_replica: int = 1
    replication_factor: int = 1
    # Acquire ipus_per_replica x replication_factor IPUs automatically, or the device id `select_ipus`.
    auto_select_ipus: bool = True
    select_ipus: Optional[int] = None
    # Encoder layer indices where a new pipeline stage (IPU) starts, e.g. [3] for 2 stages of a
    # 6-layer model: embeddings + layers 0-2 | layers 3-5 + head.
    pipeline_splits: Optional[list[int]] = None
    pipeline_schedule: Literal["grouped", "interleaved", "sequential"] = "grouped"


@dataclass
class ExperimentConfig:
    """The whole config tree."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    distribution: DistributionConfig = field(default_factory=DistributionConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# --------------------------------------------------------------------------- building


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against `annotation`, converting where YAML is loose (int for float)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], key)
        for candidate in inner:
            try:
                return _coerce(value, candidate, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} is not allowed; expected {_describe(inner)}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"config key {key!r}: {value!r} is not allowed; expected one of {allowed}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            # YAML 1.1 reads 3e-5 (no dot) as a string; it is the usual way to write a learning rate.
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return str(value)
    return value


def _describe(annotations: list[Any]) -> str:
    """`int`, `Literal["epoch"]` -> "an integer or 'epoch'"."""
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    parts = []
    for annotation in annotations:
        if typing.get_origin(annotation) is Literal:
            parts += [repr(a) for a in typing.get_args(annotation)]
        else:
            parts.append(words.get(annotation, str(annotation)))
    return " or ".join(parts)


def _unknown_key(key: str, valid: list[str]) -> ConfigError:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=1) or [v for v in valid if name in v]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}; valid keys here: {', '.join(valid)}")


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r}: expected a mapping, got {values!r}")
    types = _field_types(type(obj))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in types:
            raise _unknown_key(key, list(types))
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value, key + ".")
        else:
            setattr(obj, name, _coerce(value, types[name], key))


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` and parse the value as YAML (so ``3e-5``, ``true``, ``[1, 2]`` work)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. optimizer.learning_rate=3e-5")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads 3e-5 as a string; numbers in scientific notation are common here.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            pass
    return key.strip(), value


def flatten_keys(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: ``{"training": {"seed": 1}}`` -> ``{"training.seed": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _read_yaml(path: Path) -> Any:
    """The YAML document at `path`; syntax and encoding errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not valid UTF-8; re-encode the file as UTF-8") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        what = f"{context}: {problem}" if context else problem
        if mark is None:
            raise ConfigError(f"{path}: not valid YAML ({what})") from None
        raise ConfigError(f"{path}, line {mark.line + 1}: not valid YAML ({what} at column {mark.column + 1})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML at `path`, then `overrides` (``key=value``), then validation."""
    config = ExperimentConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        values = _read_yaml(path)
        try:
            _apply(config, values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    apply_overrides(config, overrides or [])
    validate(config)
    return config


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> None:
    """Apply ``key=value`` strings in order (validate afterwards)."""
    for text in overrides:
        key, value = parse_override(text)
        _apply(config, _nest(key, value))


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config from a nested dict (e.g. one saved next to a model)."""
    config = ExperimentConfig()
    _apply(config, values)
    validate(config)
    return config


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config key {key!r}: {message}")


def validate(config: ExperimentConfig) -> None:
    """Reject impossible values up front, naming the key."""
    d, o, t = config.data, config.optimizer, config.training
    _require(d.max_seq_length >= 8, "data.max_seq_length", f"must be >= 8, got {d.max_seq_length}")
    _require(0.0 <= d.validation_split < 1.0, "data.validation_split", "must be in [0, 1)")
    _require(0.0 <= d.test_split < 1.0, "data.test_split", "must be in [0, 1)")
    _require(d.validation_split + d.test_split < 1.0, "data.test_split", "validation_split + test_split must be < 1")
    _require(d.has_header or bool(d.column_names), "data.column_names",
             "files without a header (data.has_header: false) need column_names")
    _require(d.max_examples_per_pack >= 1, "data.max_examples_per_pack", f"must be >= 1, got {d.max_examples_per_pack}")
    if d.bucket_boundaries:
        b = d.bucket_boundaries
        _require(all(x < y for x, y in zip(b, b[1:])) and b[0] > 0, "data.bucket_boundaries",
                 "must be increasing positive lengths")
        _require(b[-1] <= d.max_seq_length, "data.bucket_boundaries", "must not exceed data.max_seq_length")
    if d.labels is not None:
        _require(len(set(d.labels)) == len(d.labels) and len(d.labels) >= 2, "data.labels",
                 "must list at least two distinct labels")
    if config.task.num_labels is not None:
        _require(config.task.num_labels >= 2, "task.num_labels", "must be >= 2")
        if d.labels is not None:
            _require(len(d.labels) == config.task.num_labels, "task.num_labels",
                     f"{config.task.num_labels} disagrees with data.labels ({len(d.labels)} labels)")
    if config.task.type == "question_answering":
        _require(0 < d.doc_stride, "data.doc_stride", "must be > 0")
        _require(0 < d.max_query_length and d.max_query_length + d.doc_stride + 3 < d.max_seq_length,
                 "data.max_query_length",
                 "max_query_length + doc_stride + 3 special tokens must be < data.max_seq_length "
                 "(each window must advance through the context)")
    _require(config.task.n_best_size >= 1, "task.n_best_size", "must be >= 1")
    _require(config.task.max_answer_length >= 1, "task.max_answer_length", "must be >= 1")
    _require(0.0 <= config.model.classifier_dropout < 1.0, "model.classifier_dropout", "must be in [0, 1)")
    _require(o.learning_rate > 0, "optimizer.learning_rate", "must be > 0")
    _require(o.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
    _require(0.0 <= o.warmup_ratio < 1.0, "optimizer.warmup_ratio", "must be in [0, 1)")
    _require(o.warmup_steps >= 0, "optimizer.warmup_steps", "must be >= 0")
    _require(not (o.warmup_steps and o.warmup_ratio), "optimizer.warmup_steps",
             "set warmup_steps or warmup_ratio, not both")
    _require(o.max_grad_norm is None or o.max_grad_norm > 0, "optimizer.max_grad_norm", "must be > 0 or null")
    _require(0.0 <= o.adam_beta1 < 1.0, "optimizer.adam_beta1", "must be in [0, 1)")
    _require(0.0 <= o.adam_beta2 < 1.0, "optimizer.adam_beta2", "must be in [0, 1)")
    _require(o.adam_epsilon > 0, "optimizer.adam_epsilon", "must be > 0")
    _require(o.power > 0, "optimizer.power", "must be > 0")
    _require(o.lr_end >= 0, "optimizer.lr_end", "must be >= 0")
    _require(0.0 < o.layerwise_lr_decay <= 1.0, "optimizer.layerwise_lr_decay",
             f"must be in (0, 1] (1 is off), got {o.layerwise_lr_decay}")
    _require(o.head_learning_rate is None or o.head_learning_rate > 0, "optimizer.head_learning_rate",
             "must be > 0 or null (null: optimizer.learning_rate)")
    _require(o.name == "adamw" or o.weight_decay == 0, "optimizer.weight_decay",
             "plain Adam has no decoupled weight decay; use optimizer.name: adamw")
    _require(t.num_train_epochs > 0, "training.num_train_epochs", "must be > 0")
    # NumPy's and TensorFlow's seeds are unsigned 32-bit.
    _require(0 <= t.seed < 2**32, "training.seed", f"must be in [0, 2**32), got {t.seed}")
    _require(t.verbose in (0, 1, 2), "training.verbose", f"must be 0, 1 or 2 (Keras' fit), got {t.verbose}")
    _require(t.max_steps == -1 or t.max_steps >= 1, "training.max_steps", "must be >= 1, or -1 to use num_train_epochs")
    _require(t.per_device_train_batch_size >= 1, "training.per_device_train_batch_size", "must be >= 1")
    _require(t.per_device_eval_batch_size >= 1, "training.per_device_eval_batch_size", "must be >= 1")
    _require(t.gradient_accumulation_steps >= 1, "training.gradient_accumulation_steps", "must be >= 1")
    _require(t.steps_per_execution >= 1, "training.steps_per_execution", "must be >= 1")
    _require(t.save_total_limit >= 1, "training.save_total_limit", "must be >= 1")
    _require(t.freeze_layers >= 0, "training.freeze_layers", "must be >= 0")
    _require(t.freeze != "bottom" or t.freeze_layers > 0, "training.freeze_layers",
             "training.freeze: bottom needs freeze_layers > 0")
    _require(t.save_steps == "epoch" or t.save_steps >= 1, "training.save_steps", "must be >= 1 or 'epoch'")
    _require(t.logging_steps >= 1, "training.logging_steps", f"must be >= 1, got {t.logging_steps}")
    _require(bool(t.resume.strip()), "training.resume", "expected 'auto', 'never' or a checkpoint path")
    _require(t.early_stopping_patience is None or t.early_stopping_patience >= 1,
             "training.early_stopping_patience", "must be >= 1 or null")
    _validate_distribution(config.distribution)


def _validate_distribution(n: "DistributionConfig") -> None:
    """Settings that are wrong on any hardware (strategy-specific batch checks live in BatchPlan)."""
    if n.devices is not None:
        _require(len(n.devices) >= 1 and len(set(n.devices)) == len(n.devices), "distribution.devices",
                 "must list distinct devices such as /gpu:0")
    _require(n.ipus_per_replica >= 1, "distribution.ipus_per_replica", "must be >= 1")
    _require(n.replication_factor >= 1, "distribution.replication_factor", "must be >= 1")
    total = n.ipus_per_replica * n.replication_factor
    _require(total & (total - 1) == 0, "distribution.replication_factor",
             f"IPUs are acquired in powers of two; ipus_per_replica x replication_factor = {total}")
    _require(n.auto_select_ipus or n.select_ipus is not None, "distribution.select_ipus",
             "set a device id (gc-info) when distribution.auto_select_ipus is false")
    splits = n.pipeline_splits
    if splits:
        _require(splits[0] > 0 and all(a < b for a, b in zip(splits, splits[1:])), "distribution.pipeline_splits",
                 "must be increasing encoder layer indices > 0")
        _require(len(splits) + 1 == n.ipus_per_replica, "distribution.pipeline_splits",
                 f"{len(splits) + 1} pipeline stages need distribution.ipus_per_replica = {len(splits) + 1} "
                 f"(one stage per IPU), got {n.ipus_per_replica}")
    else:
        _require(n.ipus_per_replica == 1, "distribution.ipus_per_replica",
                 "a replica spans several IPUs only when pipelined; set distribution.pipeline_splits")
