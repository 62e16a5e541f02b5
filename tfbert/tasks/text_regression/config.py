"""Text regression's config facts, without TensorFlow: its metric names and the shared keys it rejects.

One score per text or text pair (STS-B similarity 0-5): Hugging Face's ``problem_type:
"regression"`` with ``num_labels: 1``, TF Model Garden's ``sentence_prediction`` with one output.
It reads the shared ``task`` and ``data`` sections; the keys that only mean something for classes
(``data.labels``, ``task.num_labels``) are refused here with one line, at load time, rather than
ignored.
"""
from __future__ import annotations

from dataclasses import dataclass

from tfbert.config.schema import DataConfig, ExperimentConfig, TaskConfig
from tfbert.errors import ConfigError
from tfbert.tasks.registry import TaskSpec, register_spec

#: ``val_mse`` is logged but is the loss under another name: best-model selection uses ``val_loss``,
#: which callbacks minimise (a name without "loss" is maximised)
MONITORABLE = ("pearson", "spearman", "loss")


@dataclass
class TextRegressionConfig(TaskConfig):
    """``task`` keys of text regression: the shared ones, checked for a one-output head."""

    def validate(self, config: ExperimentConfig) -> None:
        if self.num_labels is not None:
            raise ConfigError(f"config key 'task.num_labels': {self.type} predicts one score per example; "
                              "leave task.num_labels unset")
        if config.data.labels is not None:
            raise ConfigError(f"config key 'data.labels': {self.type} reads numeric scores, not label names; "
                              "remove data.labels")
        metric = config.training.metric_for_best_model
        allowed = ["loss", *(f"val_{m}" for m in MONITORABLE)]
        if metric not in allowed:
            hint = {"val_mse": " (val_mse is val_loss: use val_loss, which is minimised)",
                    "val_accuracy": " (the default, a classification metric)"}.get(metric, "")
            raise ConfigError(f"config key 'training.metric_for_best_model': {self.type} does not select by "
                              f"{metric!r}{hint}; expected one of {', '.join(allowed)}")


SPEC = register_spec(TaskSpec(
    type="text_regression",
    task_class="tfbert.tasks.text_regression.task:TextRegression",
    config_class=TextRegressionConfig,
    data_config_class=DataConfig,
    metric_names=("loss", "pearson", "spearman", "mse"),
    train_metric_names=(),
))

__all__ = ["MONITORABLE", "SPEC", "TextRegressionConfig"]
