"""Sequence classification's config facts, without TensorFlow: no keys of its own, its metric names.

It reads the shared ``task`` and ``data`` sections as they are; registering the spec here is what
makes ``task.type: sequence_classification`` known to `load_config`.
"""
from __future__ import annotations

from tfbert.config.schema import DataConfig, TaskConfig
from tfbert.tasks.registry import TaskSpec, register_spec

SPEC = register_spec(TaskSpec(
    type="sequence_classification",
    task_class="tfbert.tasks.sequence_classification.task:SequenceClassification",
    config_class=TaskConfig,
    data_config_class=DataConfig,
    metric_names=("loss", "accuracy", "macro_f1"),
    train_metric_names=("accuracy",),
))

__all__ = ["SPEC"]
