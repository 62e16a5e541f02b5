"""What differs between task types: data, head, loss and metrics, evaluation, export.

A `Task` turns the shared machinery (config, backbone, tf.data pipeline, `TaskModel` with
gradient accumulation, callbacks, checkpoints) into one kind of fine-tuning. Each task type lives
in its own module and registers itself in `tfbert.tasks`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import tf_keras

from tfbert.config import ExperimentConfig
from tfbert.errors import ConfigError
from tfbert.data.task_data import TaskData
from tfbert.modeling.task_model import TaskModel


class Task:
    """Base class; subclasses implement every method below."""

    type: str = ""
    #: keys of ``evaluate(...)["metrics"]``, logged per epoch as ``val_<name>``
    metric_names: tuple[str, ...] = ()
    #: names of the metrics `fit` reports on training batches (besides ``loss``)
    train_metric_names: tuple[str, ...] = ()

    def check_monitor(self, metric: str, has_validation: bool) -> None:
        """Reject a ``training.metric_for_best_model`` this task never reports."""
        allowed = ["loss", *self.train_metric_names]
        if has_validation:
            allowed += [f"val_{m}" for m in self.metric_names]
        if metric not in allowed and not (not has_validation and metric[4:] in allowed and metric.startswith("val_")):
            raise ConfigError(f"config key 'training.metric_for_best_model': {self.type} does not report "
                              f"{metric!r}; expected one of {', '.join(allowed)}")

    def load_data(self, config: ExperimentConfig, tokenizer, seed: int,
                  label_names: Optional[list[str]] = None, splits: Optional[dict[str, str]] = None) -> TaskData:
        """Read, validate and tokenize the configured files (or `splits`: name -> path)."""
        raise TypeError(f"{type(self).__name__} does not define load_data")

    def build_model(self, backbone, config: ExperimentConfig, num_labels: int, input_names: list[str]) -> TaskModel:
        """The Functional task model on `backbone` (outputs stay float32)."""
        raise TypeError(f"{type(self).__name__} does not define build_model")

    def compile_args(self) -> dict[str, Any]:
        """`compile` keyword arguments: ``loss`` (mean over labelled items), ``metrics``, maybe ``loss_weights``."""
        raise TypeError(f"{type(self).__name__} does not define compile_args")

    def evaluate(self, model: tf_keras.Model, data: TaskData, split: str, config: ExperimentConfig,
                 tokenizer) -> dict:
        """A JSON-ready report; ``report["metrics"]`` is a flat dict of floats (logged as ``val_*``)."""
        raise TypeError(f"{type(self).__name__} does not define evaluate")

    def summary(self, report: dict) -> str:
        """One line for the console."""
        return ", ".join(f"{k} {v:.4f}" for k, v in report["metrics"].items())

    def export(self, model: tf_keras.Model, tokenizer, label_names: list[str], directory: Path,
               config: ExperimentConfig) -> Path:
        """A SavedModel whose `serving_default` takes raw strings."""
        raise TypeError(f"{type(self).__name__} does not define export")
