"""Checks of a whole config tree: impossible values stop with one line naming the key.

`tfbert.config.validate` runs them after every load; a task's own keys are checked by its config
class (`TaskConfig.validate`). Kept apart from the schema so each stays short. Which metrics exist
comes from the task specs (`tfbert.tasks.registry`), so checking imports no task model code.
"""
from __future__ import annotations

from tfbert.errors import ConfigError


def require(condition: bool, key: str, message: str) -> None:
    """A `ConfigError` naming `key` unless `condition`."""
    if not condition:
        raise ConfigError(f"config key {key!r}: {message}")


def check_config(config) -> None:
    """Reject impossible values up front, naming the key."""
    d, o, t = config.data, config.optimizer, config.training
    if isinstance(d.train_file, list):
        require(bool(d.train_file), "data.train_file", "an empty list; give a file or a list of files")
        require(len(set(d.train_file)) == len(d.train_file), "data.train_file", "lists a file twice")
    require(d.max_seq_length >= 8, "data.max_seq_length", f"must be >= 8, got {d.max_seq_length}")
    require(0.0 <= d.validation_split < 1.0, "data.validation_split", "must be in [0, 1)")
    require(0.0 <= d.test_split < 1.0, "data.test_split", "must be in [0, 1)")
    require(d.max_train_samples is None or d.max_train_samples >= 1, "data.max_train_samples",
            "must be >= 1 (or null for every training example)")
    require(d.validation_split + d.test_split < 1.0, "data.test_split", "validation_split + test_split must be < 1")
    for split in ("validation", "test"):
        # A fraction is held out of the training file only for a split that has no file.
        require(not (getattr(d, f"{split}_split") and getattr(d, f"{split}_file")), f"data.{split}_split",
                f"data.{split}_file is set too; a {split} set comes from its own file or from a fraction of "
                "data.train_file, not both")
    require(d.has_header or bool(d.column_names), "data.column_names",
             "files without a header (data.has_header: false) need column_names")
    require(d.max_examples_per_pack >= 1, "data.max_examples_per_pack", f"must be >= 1, got {d.max_examples_per_pack}")
    if d.bucket_boundaries:
        b = d.bucket_boundaries
        require(all(x < y for x, y in zip(b, b[1:])) and b[0] > 0, "data.bucket_boundaries",
                 "must be increasing positive lengths")
        require(b[-1] <= d.max_seq_length, "data.bucket_boundaries", "must not exceed data.max_seq_length")
    if d.labels is not None:
        require(len(set(d.labels)) == len(d.labels) and len(d.labels) >= 2, "data.labels",
                 "must list at least two distinct labels")
    if config.task.num_labels is not None:
        require(config.task.num_labels >= 2, "task.num_labels", "must be >= 2")
        if d.labels is not None:
            require(len(d.labels) == config.task.num_labels, "task.num_labels",
                     f"{config.task.num_labels} disagrees with data.labels ({len(d.labels)} labels)")
    require(t.metric_for_best_model in _monitor_choices(), "training.metric_for_best_model",
             f"{t.metric_for_best_model!r} is not allowed; expected one of "
             + ", ".join(repr(m) for m in _monitor_choices()))
    config.task.validate(config)
    require(0.0 <= config.model.classifier_dropout < 1.0, "model.classifier_dropout", "must be in [0, 1)")
    require(o.learning_rate > 0, "optimizer.learning_rate", "must be > 0")
    require(o.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0")
    require(0.0 <= o.warmup_ratio < 1.0, "optimizer.warmup_ratio", "must be in [0, 1)")
    require(o.warmup_steps >= 0, "optimizer.warmup_steps", "must be >= 0")
    require(not (o.warmup_steps and o.warmup_ratio), "optimizer.warmup_steps",
             "set warmup_steps or warmup_ratio, not both")
    require(o.max_grad_norm is None or o.max_grad_norm > 0, "optimizer.max_grad_norm", "must be > 0 or null")
    require(0.0 <= o.adam_beta1 < 1.0, "optimizer.adam_beta1", "must be in [0, 1)")
    require(0.0 <= o.adam_beta2 < 1.0, "optimizer.adam_beta2", "must be in [0, 1)")
    require(o.adam_epsilon > 0, "optimizer.adam_epsilon", "must be > 0")
    require(o.power > 0, "optimizer.power", "must be > 0")
    require(o.lr_end >= 0, "optimizer.lr_end", "must be >= 0")
    require(0.0 < o.layerwise_lr_decay <= 1.0, "optimizer.layerwise_lr_decay",
             f"must be in (0, 1] (1 is off), got {o.layerwise_lr_decay}")
    require(o.head_learning_rate is None or o.head_learning_rate > 0, "optimizer.head_learning_rate",
             "must be > 0 or null (null: optimizer.learning_rate)")
    require(o.name == "adamw" or o.weight_decay == 0, "optimizer.weight_decay",
             "plain Adam has no decoupled weight decay; use optimizer.name: adamw")
    require(t.num_train_epochs > 0, "training.num_train_epochs", "must be > 0")
    # NumPy's and TensorFlow's seeds are unsigned 32-bit.
    require(0 <= t.seed < 2**32, "training.seed", f"must be in [0, 2**32), got {t.seed}")
    require(t.verbose in (0, 1, 2), "training.verbose", f"must be 0, 1 or 2 (Keras' fit), got {t.verbose}")
    require(t.max_steps == -1 or t.max_steps >= 1, "training.max_steps", "must be >= 1, or -1 to use num_train_epochs")
    require(t.per_device_train_batch_size >= 1, "training.per_device_train_batch_size", "must be >= 1")
    require(t.per_device_eval_batch_size >= 1, "training.per_device_eval_batch_size", "must be >= 1")
    require(t.gradient_accumulation_steps >= 1, "training.gradient_accumulation_steps", "must be >= 1")
    require(t.steps_per_execution >= 1, "training.steps_per_execution", "must be >= 1")
    require(t.save_total_limit >= 1, "training.save_total_limit", "must be >= 1")
    require(t.freeze_layers >= 0, "training.freeze_layers", "must be >= 0")
    require(t.freeze != "bottom" or t.freeze_layers > 0, "training.freeze_layers",
             "training.freeze: bottom needs freeze_layers > 0")
    require(t.save_steps == "epoch" or t.save_steps >= 1, "training.save_steps", "must be >= 1 or 'epoch'")
    require(t.logging_steps >= 1, "training.logging_steps", f"must be >= 1, got {t.logging_steps}")
    require(bool(t.resume.strip()), "training.resume", "expected 'auto', 'never' or a checkpoint path")
    require(t.early_stopping_patience is None or t.early_stopping_patience >= 1,
             "training.early_stopping_patience", "must be >= 1 or null")
    _validate_distribution(config.distribution)


def _monitor_choices() -> list[str]:
    """Every metric some registered task reports (each task checks its own when the run is built)."""
    from tfbert.tasks.registry import task_specs

    choices: dict[str, None] = {}
    for spec in task_specs():
        for name in (*spec.metric_names, "loss"):
            choices[f"val_{name}"] = None
        for name in ("loss", *spec.train_metric_names):
            choices[name] = None
    return list(choices)


def _validate_distribution(n) -> None:
    """Settings that are wrong on any hardware (strategy-specific batch checks live in BatchPlan)."""
    if n.devices is not None:
        require(len(n.devices) >= 1 and len(set(n.devices)) == len(n.devices), "distribution.devices",
                 "must list distinct devices such as /gpu:0")
    require(n.ipus_per_replica >= 1, "distribution.ipus_per_replica", "must be >= 1")
    require(n.replication_factor >= 1, "distribution.replication_factor", "must be >= 1")
    total = n.ipus_per_replica * n.replication_factor
    require(total & (total - 1) == 0, "distribution.replication_factor",
             f"IPUs are acquired in powers of two; ipus_per_replica x replication_factor = {total}")
    require(n.auto_select_ipus or n.select_ipus is not None, "distribution.select_ipus",
             "set a device id (gc-info) when distribution.auto_select_ipus is false")
    splits = n.pipeline_splits
    if splits:
        require(splits[0] > 0 and all(a < b for a, b in zip(splits, splits[1:])), "distribution.pipeline_splits",
                 "must be increasing encoder layer indices > 0")
        require(len(splits) + 1 == n.ipus_per_replica, "distribution.pipeline_splits",
                 f"{len(splits) + 1} pipeline stages need distribution.ipus_per_replica = {len(splits) + 1} "
                 f"(one stage per IPU), got {n.ipus_per_replica}")
    else:
        require(n.ipus_per_replica == 1, "distribution.ipus_per_replica",
                 "a replica spans several IPUs only when pipelined; set distribution.pipeline_splits")
