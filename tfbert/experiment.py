"""Build everything a run needs from a config: tokenizer, data, model, optimizer, callbacks.

This is the library entry point: `build_experiment(config)` returns a compiled Keras model and
`tf.data` datasets, so a user can call ``model.fit`` in their own script (see ``examples/``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import tensorflow as tf
import tf_keras

from tfbert import distribute
from tfbert.config import ExperimentConfig
from tfbert.data.encoding import EncodedSplit
from tfbert.data.pipeline import bucket_sizes, make_dataset
from tfbert.data.tfrecords import load_task_data
from tfbert.errors import ConfigError
from tfbert.modeling.freezing import apply_freezing
from tfbert.modeling.task_model import TaskModel
from tfbert.modeling.saving import find_backbone, load_pretrained, read_label_names
from tfbert.pretrained import is_finetuned_dir, load_backbone, load_tokenizer
from tfbert.tasks import Task, TaskData, get_task
from tfbert.training import callbacks as tfbert_callbacks
from tfbert.training.batch_plan import BatchPlan
from tfbert.training.optimization import make_optimizer
from tfbert.training.precision import set_precision
from tfbert.training.seed import set_seed


@dataclass
class Experiment:
    """A ready-to-fit run: compiled `model`, `tf.data` splits, tokenizer and label names."""

    config: ExperimentConfig
    task: Task
    model: TaskModel
    tokenizer: object
    data: TaskData
    plan: BatchPlan
    strategy: tf.distribute.Strategy
    datasets: dict[str, tf.data.Dataset] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return self.data.label_names

    @property
    def train_dataset(self) -> tf.data.Dataset:
        return self.datasets["train"]

    @property
    def validation_dataset(self) -> Optional[tf.data.Dataset]:
        return self.datasets.get("validation")

    @property
    def output_dir(self) -> Path:
        return Path(self.config.training.output_dir)

    def evaluate_split(self, split: str, model: Optional[tf_keras.Model] = None) -> dict:
        """The task's evaluation report on a split (``report["metrics"]``: flat floats)."""
        return self.task.evaluate(model or self.model, self.data, split, self.config, self.tokenizer)

    def callbacks(self) -> list[tf_keras.callbacks.Callback]:
        """Validation metrics, checkpoints (last N + best), early stopping, TensorBoard, logs."""
        t = self.config.training
        out = self.output_dir
        monitor = t.metric_for_best_model
        callbacks: list[tf_keras.callbacks.Callback] = []
        if "validation" in self.data.splits:
            def evaluate(model):
                return self.evaluate_split("validation", model)["metrics"]
            callbacks.append(tfbert_callbacks.ValidationMetrics(evaluate))
        elif monitor.startswith("val_"):
            monitor = monitor[len("val_"):]
        callbacks.append(tfbert_callbacks.CheckpointKeeper(
            out / "checkpoints", keep=t.save_total_limit, monitor=monitor, restore_best=t.load_best_model_at_end,
        ))
        if t.early_stopping_patience:
            callbacks.append(tf_keras.callbacks.EarlyStopping(
                monitor=monitor, patience=t.early_stopping_patience, mode=tfbert_callbacks.monitor_mode(monitor),
            ))
        if t.tensorboard:
            callbacks.append(tf_keras.callbacks.TensorBoard(
                log_dir=str(out / "logs"), write_graph=False, profile_batch=0, update_freq="epoch",
            ))
        callbacks.append(tf_keras.callbacks.CSVLogger(str(out / "metrics.csv"), append=True))
        callbacks.append(tfbert_callbacks.MetricsLog(out / "metrics.jsonl"))
        return callbacks

    def fit(self, **kwargs) -> tf_keras.callbacks.History:
        """`model.fit` with the planned epochs and the standard callbacks."""
        return self.model.fit(
            self.train_dataset,
            epochs=self.plan.epochs,
            steps_per_epoch=self.plan.steps_per_epoch_for_fit,
            callbacks=kwargs.pop("callbacks", None) or self.callbacks(),
            verbose=kwargs.pop("verbose", self.config.training.verbose),
            **kwargs,
        )


def make_split_dataset(config: ExperimentConfig, split: EncodedSplit, training: bool, pad_token_id: int,
                       global_batch_size: int, drop_remainder: bool = False) -> tf.data.Dataset:
    """The `tf.data` pipeline for one split, as the config asks."""
    d, t = config.data, config.training
    return make_dataset(
        split,
        batch_size=global_batch_size if training else t.per_device_eval_batch_size,
        padding=d.padding,
        max_seq_length=d.max_seq_length,
        pad_token_id=pad_token_id,
        shuffle=training,
        seed=t.seed,
        drop_remainder=drop_remainder,
        bucket_boundaries=d.bucket_boundaries,
    )


def build_model(config: ExperimentConfig, task: Task, num_labels: int, input_names: list[str],
                total_steps: int, steps_per_execution: Optional[int] = None) -> TaskModel:
    """Backbone + head, frozen as configured, compiled with the configured optimizer.

    Call inside the strategy's scope. ``model.name_or_path`` may also be a fine-tuned tfbert
    model directory, whose weights (head included) are the starting point.
    """
    if is_finetuned_dir(config.model.name_or_path):
        # Continue fine-tuning a tfbert model: its head comes along, so the labels must agree.
        model = load_pretrained(config.model.name_or_path, num_labels=num_labels).model
        model.gradient_accumulation_steps = config.training.gradient_accumulation_steps
        backbone = find_backbone(model)
        apply_freezing(backbone, config.training.freeze, config.training.freeze_layers)
    else:
        backbone = load_backbone(config.model.name_or_path)
        check_sequence_length(backbone.config, config.data.max_seq_length)
        apply_freezing(backbone, config.training.freeze, config.training.freeze_layers)
        model = task.build_model(backbone, config, num_labels, input_names)
    compile_model(model, config, total_steps, task, steps_per_execution)
    return model


def check_sequence_length(backbone_config, max_seq_length: int) -> None:
    """Longer inputs than the position table would fail deep inside the embedding lookup."""
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise ConfigError(f"config key 'data.max_seq_length': {max_seq_length} exceeds the model's "
                          f"{positions} position embeddings")


def compile_model(model: tf_keras.Model, config: ExperimentConfig, total_steps: int, task: Optional[Task] = None,
                  steps_per_execution: Optional[int] = None) -> None:
    """The configured optimizer and the task's loss and metrics."""
    task = task or get_task(config.task.type)
    optimizer = make_optimizer(config.optimizer, total_steps, mixed_float16=config.precision.policy == "mixed_float16")
    model.compile(optimizer=optimizer, steps_per_execution=steps_per_execution or config.training.steps_per_execution,
                  **task.compile_args())
    # Create Adam's slots now: created inside the first traced step, they make tf.function trace
    # the whole train step twice (slower first step, and the discarded graph's memory).
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if hasattr(inner, "build"):
        inner.build(model.trainable_variables)


def _checkpoint_labels(config: ExperimentConfig) -> Optional[list[str]]:
    """Label names of a fine-tuned starting checkpoint, checked against the config."""
    if not is_finetuned_dir(config.model.name_or_path):
        return None
    names = read_label_names(config.model.name_or_path)
    where = f"the checkpoint {config.model.name_or_path}"
    if config.task.num_labels is not None and config.task.num_labels != len(names):
        raise ConfigError(f"config key 'task.num_labels': {config.task.num_labels} disagrees with "
                          f"{where} ({len(names)} labels: {names})")
    if config.data.labels is not None and list(config.data.labels) != names:
        raise ConfigError(f"config key 'data.labels': {config.data.labels} disagrees with {where} ({names})")
    return names


def build_experiment(config: ExperimentConfig, strategy: Optional[tf.distribute.Strategy] = None) -> Experiment:
    """Seed, set precision, read and tokenize data, build and compile the model in `strategy`'s scope."""
    set_seed(config.training.seed)
    set_precision(config.precision.policy)
    strategy = strategy or tf.distribute.get_strategy()
    task = get_task(config.task.type)
    tokenizer = load_tokenizer(config.model.name_or_path)
    # From the configured files, or already tokenized from data.tfrecords (tools/make_tfrecords.py).
    data = load_task_data(task, config, tokenizer, config.training.seed, _checkpoint_labels(config))
    if "train" not in data.splits:
        raise ConfigError("config key 'data.train_file': training needs a training file")
    task.check_monitor(config.training.metric_for_best_model, "validation" in data.splits)
    num_labels = len(data.label_names)
    if config.task.num_labels is not None and data.label_names and config.task.num_labels != num_labels:
        raise ConfigError(
            f"config key 'task.num_labels': {config.task.num_labels} disagrees with the "
            f"{num_labels} labels found in {config.data.train_file} ({data.label_names})"
        )
    t = config.training
    drop_remainder = config.data.padding == "max_length"
    dist = config.distribution
    plan = BatchPlan(
        num_examples=len(data.splits["train"]),
        per_replica_batch_size=t.per_device_train_batch_size,
        num_replicas=distribute.num_replicas(strategy, dist),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        steps_per_execution=t.steps_per_execution,
        drop_remainder=drop_remainder,
        strategy=distribute.strategy_kind(strategy),
        pipeline_stages=len(dist.pipeline_splits or []) + 1,
        pipeline_schedule=dist.pipeline_schedule,
        bucket_sizes=(bucket_sizes(data.splits["train"].lengths, config.data.max_seq_length, config.data.bucket_boundaries)
                      if config.data.padding == "bucket" else ()),
    )
    datasets = {
        name: distribute.shard_by_data(make_split_dataset(
            config, split, name == "train", tokenizer.pad_token_id, plan.dataset_batch_size, drop_remainder))
        for name, split in data.splits.items()
    }
    datasets["train"] = plan.limit_epoch(datasets["train"])  # IPU: whole executions per epoch
    input_names = [n for n in tokenizer.model_input_names if n in data.splits["train"].features] + ["attention_mask"]
    with strategy.scope():
        model = build_model(config, task, num_labels, input_names, plan.total_optimizer_steps, plan.steps_per_execution)
        # IPU: the SDK's accumulation (and pipelining) options, which are never saved with a model.
        model = distribute.prepare_model(
            model, strategy, t.gradient_accumulation_steps, dist, config.model.pooling,
            compile_fn=lambda m: compile_model(m, config, plan.total_optimizer_steps, task, plan.steps_per_execution))
    return Experiment(config=config, task=task, model=model, tokenizer=tokenizer, data=data, plan=plan,
                      strategy=strategy, datasets=datasets)
