"""The config tree's schema: one dataclass per section, every key with its type and default.

Only dataclasses and their defaults live here, so the schema (and with it `load_config`, every
``--help`` and every config error) imports neither TensorFlow nor transformers. How a tree is
assembled from YAML and ``--set`` is `tfbert.config.loading`; value parsing `tfbert.config.values`;
whole-tree checks `tfbert.config.checks`. A task with keys of its own declares them in subclasses
of `TaskConfig` / `DataConfig` in its TF-free ``tfbert/tasks/<type>/config.py``. Field names
follow Hugging Face ``TrainingArguments`` where one exists.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from tfbert.tasks.registry import DEFAULT_TASK_TYPE

#: ``distribution.strategy`` and ``--strategy`` values (`tfbert.distribute` builds each)
Strategy = Literal["default", "mirrored", "multiworker", "tpu", "ipu", "auto"]
STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)


@dataclass
class ModelConfig:
    """Which pretrained backbone and how the task head reads it."""

    name_or_path: str = "bundled:all-MiniLM-L6-v2"
    #: ``auto``: tfbert's own encoder for the model types it supports, transformers' TFAutoModel
    #: otherwise; ``tfbert`` insists on tfbert's encoder, ``transformers`` on TFAutoModel.
    backbone: Literal["auto", "tfbert", "transformers"] = "auto"
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
    a subclass, its `TaskSpec.data_config_class`; ``data`` is an instance of that subclass.
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
    #: Seeded fractions of the whole training file held out as the validation / test set, for a
    #: split that has no file of its own (`tfbert.data.splits.hold_out`, the same for every task):
    #: stratified by label for single-label classification, whole articles for QA, random rows
    #: (sentences for NER) otherwise.
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
    `TaskSpec.config_class`; ``task`` is an instance of that subclass once ``type`` is known.
    """

    type: str = DEFAULT_TASK_TYPE
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
    #: Adam on embedding rows the batch does not use is skipped (TensorFlow Addons' LazyAdam): their
    #: moments neither decay nor move them. Applies where embedding gradients stay sparse (one
    #: device, no accumulation, no XLA); elsewhere every row updates as usual. Off: exact Adam.
    lazy_embedding_updates: bool = False


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
    #: XLA-compile the training step (Keras ``jit_compile``). Off by default: on CPU it measured no
    #: faster (docs/benchmarks.md) and compiles once per input shape (use padding packed or
    #: max_length with it); TPU and IPU compile the step whatever this says.
    jit_compile: bool = False
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

    strategy: Strategy = "default"
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
