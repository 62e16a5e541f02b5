"""Multi-label classification's config facts, without TensorFlow: its keys, their checks, metric names.

The decision rule lives here because training, evaluation, the model directory and the SavedModel
all read it from the config: a fixed ``task.threshold`` for every label, or thresholds tuned on the
validation split (``task.threshold_rule``), written back as ``task.tuned_threshold`` (global) and
``task.tuned_thresholds`` (one per label) so a saved model serves exactly what was evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from tfbert.config.schema import DataConfig, ExperimentConfig, TaskConfig
from tfbert.errors import ConfigError
from tfbert.tasks.registry import TaskSpec, register_spec


@dataclass
class MultiLabelDataConfig(DataConfig):
    """``data`` keys of multi-label classification."""

    #: separates the labels of a row in a text column (a JSON list ``[...]`` is read as a list)
    label_delimiter: str = ","
    #: the labels are 0-based indexes into ``data.labels`` (GoEmotions: ids into labels.txt)
    labels_are_ids: bool = False


@dataclass
class MultiLabelConfig(TaskConfig):
    """``task`` keys of multi-label classification."""

    #: one fixed decision threshold for every label; null: tuned on validation by ``threshold_rule``
    threshold: Optional[float] = None
    #: what is tuned on validation when ``threshold`` is null: ``global`` (one threshold, best micro
    #: F1) or ``per_label`` (each label's own best F1; labels with fewer than
    #: ``threshold_min_support`` positive validation examples keep the global one)
    threshold_rule: Literal["global", "per_label"] = "global"
    #: positive validation examples a label needs before it gets a threshold of its own
    threshold_min_support: int = 20
    #: the global threshold tuned on validation (written at evaluation; read when ``threshold`` is null)
    tuned_threshold: Optional[float] = None
    #: each label's threshold tuned on validation, in label order (written at evaluation with
    #: ``threshold_rule: per_label``)
    tuned_thresholds: Optional[list[float]] = None

    #: weight of each label's positive term in the binary cross-entropy, in label order; null: 1
    pos_weight: Optional[list[float]] = None
    #: the head's initial bias: ``zero``, or ``label_prior`` (each label's log-odds in the training
    #: split, so the first updates learn features instead of pushing 28 logits down to rare priors)
    initial_bias: Literal["zero", "label_prior"] = "zero"

    def decision_thresholds(self, num_labels: int) -> list[float]:
        """Each label's threshold in force (training, evaluation and serving).

        ``threshold`` if set; else, with ``threshold_rule: per_label``, ``tuned_thresholds``; else
        ``tuned_threshold``; else 0.5 for every label.
        """
        if self.threshold is not None:
            return [self.threshold] * num_labels
        if self.threshold_rule == "per_label" and self.tuned_thresholds is not None:
            if len(self.tuned_thresholds) != num_labels:
                raise ConfigError(f"config key 'task.tuned_thresholds': {len(self.tuned_thresholds)} values for "
                                  f"{num_labels} labels")
            return list(self.tuned_thresholds)
        return [0.5 if self.tuned_threshold is None else self.tuned_threshold] * num_labels

    def validate(self, config: ExperimentConfig) -> None:
        for key in ("threshold", "tuned_threshold"):
            value = getattr(self, key)
            if value is not None and not 0.0 < value < 1.0:
                raise ConfigError(f"config key 'task.{key}': must be in (0, 1) or null, got {value}")
        if self.tuned_thresholds is not None:
            bad = [v for v in self.tuned_thresholds if not 0.0 < v < 1.0]
            if bad:
                raise ConfigError(f"config key 'task.tuned_thresholds': every value must be in (0, 1), got {bad[0]}")
            if config.data.labels and len(self.tuned_thresholds) != len(config.data.labels):
                raise ConfigError(f"config key 'task.tuned_thresholds': {len(self.tuned_thresholds)} values for the "
                                  f"{len(config.data.labels)} labels of data.labels")
        if self.threshold is not None and self.threshold_rule == "per_label":
            raise ConfigError("config key 'task.threshold_rule': per_label tunes a threshold per label, but "
                              f"task.threshold fixes {self.threshold} for all; set task.threshold: null or "
                              "task.threshold_rule: global")
        if self.threshold_min_support < 1:
            raise ConfigError(f"config key 'task.threshold_min_support': must be at least 1, got "
                              f"{self.threshold_min_support}")
        if config.data.labels_are_ids and not config.data.labels:
            raise ConfigError("config key 'data.labels_are_ids': needs data.labels (the names the ids point at)")
        if config.data.padding == "packed":
            raise ConfigError(f"config key 'data.padding': packed does not support task.type {config.task.type}")


SPEC = register_spec(TaskSpec(
    type="multi_label_classification",
    task_class="tfbert.tasks.multi_label_classification.task:MultiLabelClassification",
    config_class=MultiLabelConfig,
    data_config_class=MultiLabelDataConfig,
    metric_names=("loss", "micro_f1", "macro_f1", "subset_accuracy"),
    train_metric_names=("label_accuracy",),
))

__all__ = ["MultiLabelConfig", "MultiLabelDataConfig", "SPEC"]
