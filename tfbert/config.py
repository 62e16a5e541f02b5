"""Typed experiment config: dataclasses, YAML loading, ``--set`` overrides, validation.

Overrides apply in a fixed order: dataclass defaults, then the YAML file, then each
``--set key=value`` in the order given, then validation of the whole tree. Field names follow
Hugging Face ``TrainingArguments`` where one exists.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from tfbert.config_checks import check_config
from tfbert.config_values import coerce, nest, parse_override, read_yaml, unknown_key
from tfbert.errors import ConfigError


@dataclass
class ModelConfig:
    """Which pretrained backbone and how the task head reads it."""

    name_or_path: str = "bundled:all-MiniLM-L6-v2"
    pooling: Literal["cls", "pooler", "mean"] = "pooler"
    classifier_dropout: float = 0.1


def file_list(value: Union[str, Path, list, None]) -> list[str]:
    """A data file setting (one path, a list of paths, or unset) as a list of paths."""
    if not value:
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]


@dataclass
class DataConfig:
    """Where the examples come from and how they are tokenized and batched.

    A task that reads keys of its own (NER's ``tag_scheme``, QA's ``doc_stride``) declares them in
    a subclass, its `Task.data_config_class`; ``data`` is an instance of that subclass.
    """

    #: One file, or a list of files of one format read in order and concatenated (Hugging Face's
    #: ``data_files`` takes a list too): e.g. a task's train and dev files once the search is done.
    train_file: Optional[Union[str, list[str]]] = None
    validation_file: Optional[str] = None
    test_file: Optional[str] = None
    format: Literal["auto", "csv", "tsv", "json", "jsonl", "conll", "squad"] = "auto"
    has_header: bool = True
    column_names: Optional[list[str]] = None
    text_column: str = "text"
    text_pair_column: Optional[str] = None
    label_column: str = "label"
    labels: Optional[list[str]] = None
    validation_split: float = 0.0
    test_split: float = 0.0
    #: Train on this many training examples drawn with ``training.seed`` (Hugging Face's name),
    #: e.g. for a quick search; examples are counted after tokenization (QA windows). None: all.
    max_train_samples: Optional[int] = None
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

    def train_files(self) -> list[str]:
        """``train_file`` as a list of paths (empty when unset)."""
        return file_list(self.train_file)

    def train_file_label(self) -> str:
        """``train_file`` as messages and the model card name it: ``a.conll + b.conll``."""
        return " + ".join(self.train_files())


@dataclass
class TaskConfig:
    """What is predicted: ``type`` (a registered task, `tfbert.tasks.registry`) and its own keys.

    A task with keys of its own (QA's ``n_best_size``) declares them in a subclass, its
    `Task.config_class`; ``task`` is an instance of that subclass once ``type`` is known.
    """

    type: str = "sequence_classification"
    num_labels: Optional[int] = None

    def validate(self, config: "ExperimentConfig") -> None:
        """Checks of the task's own keys and of the shared keys it reads; `ConfigError` naming the key."""


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
    #: A metric some task reports (``val_<name>`` on validation); the task checks its own at build.
    metric_for_best_model: str = "val_accuracy"
    early_stopping_patience: Optional[int] = None
    #: Evaluate the test split at the end (Hugging Face's name); false evaluates the validation
    #: split instead. A search's trials set it false, so no trial ever scores the test set.
    do_predict: bool = True
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


def _task_sections(task_type: str) -> dict[str, type]:
    """Section name -> the dataclass the task uses for it (``task`` and ``data``)."""
    from tfbert.tasks.registry import get_task_class

    cls = get_task_class(task_type)
    return {"task": cls.config_class, "data": cls.data_config_class}


def _convert(obj: Any, cls: type) -> Any:
    """`obj`'s values for the fields `cls` has, as a `cls` (other fields take their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name in names})


def set_task_type(config: "ExperimentConfig", task_type: Any) -> None:
    """Set ``task.type`` and give ``task`` and ``data`` that task's config classes (its keys)."""
    task_type = coerce(task_type, str, "task.type")
    for section, cls in _task_sections(task_type).items():
        if type(getattr(config, section)) is not cls:
            setattr(config, section, _convert(getattr(config, section), cls))
    config.task.type = task_type


def _other_tasks_key(section: str, name: str) -> bool:
    """A key of another task's config: kept by configs saved before keys moved to their task."""
    from tfbert.tasks.registry import task_classes

    attribute = {"task": "config_class", "data": "data_config_class"}.get(section)
    return attribute is not None and any(
        name in {f.name for f in dataclasses.fields(getattr(cls, attribute))} for cls in task_classes())


def _apply(obj: Any, values: dict[str, Any], prefix: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"config key {prefix.rstrip('.') or '<root>'!r}: expected a mapping, got {values!r}")
    if isinstance(obj, ExperimentConfig) and isinstance(values.get("task"), dict) and "type" in values["task"]:
        # The task's type decides which keys the task and data sections have: set it first.
        set_task_type(obj, values["task"]["type"])
    types = _field_types(type(obj))
    for name, value in values.items():
        key = f"{prefix}{name}"
        if prefix == "task." and name == "type":
            continue
        if name not in types:
            if _other_tasks_key(prefix.rstrip("."), name):
                continue
            raise unknown_key(key, list(types))
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _apply(current, value, key + ".")
        else:
            setattr(obj, name, coerce(value, types[name], key))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults, then the YAML at `path`, then `overrides` (``key=value``), then validation.

    ``task.type`` is applied first (it decides which ``task`` and ``data`` keys exist); keys of
    another task type are accepted and ignored, as configs saved before keys moved list them all.

    Args:
        path: a YAML file of sections (``model``, ``data``, ``task``…), or None for the defaults.
        overrides: ``section.key=value`` strings, applied in order; values are read as YAML.

    Returns:
        The validated config; a `ConfigError` naming the file, line or key otherwise.

    Examples:
        >>> config = load_config("configs/sms_spam_minilm.yaml", ["optimizer.learning_rate=3e-5"])
        >>> config.optimizer.learning_rate
        3e-05
        >>> load_config(None, ["task.type=question_answering", "data.max_seq_length=384"]).task.n_best_size
        20
    """
    config = new_config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        values = read_yaml(path)
        try:
            _apply(config, values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    apply_overrides(config, overrides or [])
    validate(config)
    return config


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> None:
    """Apply ``key=value`` strings in order, the last ``task.type`` first (validate afterwards).

    The task type decides which ``task``/``data`` keys exist, so ``data.doc_stride=16`` before
    ``task.type=question_answering`` still sets QA's stride.
    """
    parsed = [parse_override(text) for text in overrides]
    types = [value for key, value in parsed if key == "task.type"]
    if types:
        set_task_type(config, types[-1])
    for key, value in parsed:
        _apply(config, nest(key, value))


def config_from_dict(values: dict[str, Any]) -> ExperimentConfig:
    """Build and validate a config from a nested dict (e.g. one saved next to a model)."""
    config = new_config()
    _apply(config, values)
    validate(config)
    return config


def new_config(task_type: Optional[str] = None) -> ExperimentConfig:
    """The defaults, with the config classes of `task_type` (default: the default ``task.type``)."""
    config = ExperimentConfig()
    set_task_type(config, task_type or config.task.type)
    return config


def validate(config: ExperimentConfig) -> None:
    """Reject impossible values up front, naming the key (`tfbert.config_checks`)."""
    if type(config.task) is TaskConfig or type(config.data) is DataConfig:
        set_task_type(config, config.task.type)  # a tree built by hand: give it the task's classes
    check_config(config)
