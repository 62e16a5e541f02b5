"""Token classification's config facts, without TensorFlow: its ``data`` keys and metric names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tfbert.config.schema import DataConfig, TaskConfig
from tfbert.tasks.registry import TaskSpec, register_spec


@dataclass
class TokenClassificationDataConfig(DataConfig):
    """``data`` keys of token classification (YAML keys ``data.tag_scheme`` etc.)."""

    tokens_column: str = "tokens"
    tags_column: str = "tags"
    tag_scheme: Literal["iob1", "iob2", "bioes"] = "iob2"
    label_all_subwords: bool = False


SPEC = register_spec(TaskSpec(
    type="token_classification",
    task_class="tfbert.tasks.token_classification.task:TokenClassification",
    config_class=TaskConfig,
    data_config_class=TokenClassificationDataConfig,
    metric_names=("loss", "precision", "recall", "f1", "macro_f1", "token_accuracy"),
    train_metric_names=("token_accuracy",),
))

__all__ = ["SPEC", "TokenClassificationDataConfig"]
