"""What differs between task types: config keys, data, head, loss and metrics, evaluation, export.

A `Task` turns the shared machinery (config, backbone, tf.data pipeline, `TaskModel` with
gradient accumulation, callbacks, checkpoints) into one kind of fine-tuning, in the manner of TF
Model Garden's ``base_task.Task``. Each task type is a package ``tfbert/tasks/<type>/``: its
TF-free ``config.py`` registers a `TaskSpec` (type, config classes, metric names) and names the
module of its `Task`, which reads those facts from the spec; no core module lists the tasks.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Optional

import tf_keras

from tfbert.config import DataConfig, ExperimentConfig, TaskConfig
from tfbert.errors import ConfigError
from tfbert.data.task_data import TaskData
from tfbert.modeling.classifier import build_sequence_classifier
from tfbert.modeling.task_model import TaskModel
from tfbert.tasks.registry import TaskSpec


class Task(abc.ABC):
    """One kind of fine-tuning: what a task module declares and implements.

    Class attributes declare the task: its `spec` (type, config classes, metric names: declared
    once, in the task's TF-free config module), transformers and Hub facts, TFRecord labels and
    report parts. A subclass implements `load_data`, `build_model`, `loss`, `compile_args`,
    `evaluate`, `summary` and `serving_module_class`, and overrides the hooks whose defaults do
    not fit it.

    Examples:
        >>> @register_task  # doctest: +SKIP
        ... class Regression(Task):
        ...     type = "my_regression"
        ...     metric_names = ("loss", "pearson")
        >>> get_task("my_regression")  # doctest: +SKIP
    """

    #: the task's registered spec; a subclass that sets it gets the five attributes below from it
    spec: ClassVar[Optional[TaskSpec]] = None
    type: str = ""
    #: the ``task`` section's dataclass (`TaskConfig` or a subclass with this task's keys)
    config_class: type[TaskConfig] = TaskConfig
    #: the ``data`` section's dataclass (`DataConfig` or a subclass with this task's keys)
    data_config_class: type[DataConfig] = DataConfig
    #: keys of ``evaluate(...)["metrics"]``, logged per epoch as ``val_<name>``
    metric_names: tuple[str, ...] = ()
    #: names of the metrics `fit` reports on training batches (besides ``loss``)
    train_metric_names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls.type, cls.config_class, cls.data_config_class = spec.type, spec.config_class, spec.data_config_class
            cls.metric_names, cls.train_metric_names = spec.metric_names, spec.train_metric_names

    #: transformers' auto class of the saved model directory (`tfbert.modeling.saving`)
    hf_auto_class: str = ""
    #: the head layer's name, the same in tfbert's model and the transformers class
    head_name: str = "classifier"
    #: the Hub's pipeline tag and its title (model card, ``tfbert_model.json``)
    pipeline_tag: tuple[str, str] = ("", "")
    #: the model's outputs, in order: a tensor's name, or the keys of its output dict (QA's start and
    #: end logits), which are also the attributes of the transformers class's output
    output_names: tuple[str, ...] = ("logits",)
    #: whether the head has one output per label, so the saved transformers config carries
    #: ``num_labels``/``id2label`` (False: QA's start/end logits, whatever the labels)
    one_output_per_label: bool = True
    #: how the model card's Hub ``model-index`` lists each of `metric_names`: (Hub metric type,
    #: display name), or None to keep it out (losses, span accuracies); every metric name is listed
    hub_metrics: dict[str, Optional[tuple[str, str]]] = {}
    #: the TFRecord type of a per-example label (`tfbert.data.tfrecords`): ``int64`` class ids, or
    #: ``float32`` values (a multi-label row of 0/1, a regression score)
    record_label_dtype: str = "int64"
    #: whether evaluation needs only the encoded examples, so validation/test can come from TFRecords
    #: (NER and QA evaluation need the original words and contexts)
    evaluates_from_records: bool = False

    def has_validation(self, config: ExperimentConfig) -> bool:
        """Whether the config yields a validation split: a file, or a fraction held out of the
        training file (`tfbert.data.splits.hold_out`, which every task's loader uses)."""
        return bool(config.data.validation_file or config.data.validation_split > 0)

    def reads_pairs(self, config: ExperimentConfig) -> bool:
        """Whether the model reads two texts per example (a pair of segments)."""
        return bool(config.data.text_pair_column)

    def has_hf_head(self, config: ExperimentConfig) -> bool:
        """Whether tfbert's head is the transformers class's own head (else saved as backbone + head file)."""
        return True

    def hf_config_updates(self, label_names: list[str]) -> dict[str, Any]:
        """Attributes set on the saved transformers config (labels; multi-label's ``problem_type``)."""
        if not self.one_output_per_label:
            return {}
        return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
                "label2id": {n: i for i, n in enumerate(label_names)}}

    def check_monitor(self, metric: str, has_validation: bool) -> None:
        """Reject a ``training.metric_for_best_model`` this task never reports."""
        allowed = ["loss", *self.train_metric_names]
        if has_validation:
            allowed += [f"val_{m}" for m in self.metric_names]
        if metric not in allowed and not (not has_validation and metric[4:] in allowed and metric.startswith("val_")):
            raise ConfigError(f"config key 'training.metric_for_best_model': {self.type} does not report "
                              f"{metric!r}; expected one of {', '.join(allowed)}")

    @abc.abstractmethod
    def load_data(self, config: ExperimentConfig, tokenizer, seed: int,
                  label_names: Optional[list[str]] = None, splits: Optional[dict[str, str]] = None) -> TaskData:
        """Read, validate and tokenize the configured files (or `splits`: name -> path)."""

    @abc.abstractmethod
    def build_model(self, backbone, config: ExperimentConfig, num_labels: int, input_names: list[str]) -> TaskModel:
        """The Functional task model on `backbone` (outputs stay float32)."""

    @abc.abstractmethod
    def loss(self) -> Any:
        """The task's one loss definition (a Keras loss, or one per output): `compile_args` trains with
        it and `evaluate` reports it on the predicted logits, so the two cannot drift."""

    @abc.abstractmethod
    def compile_args(self) -> dict[str, Any]:
        """`compile` keyword arguments: ``loss`` (`loss`), ``metrics``, maybe ``loss_weights``."""

    #: whether the task defines `packed_outputs` (static-shape strategies then pack by default)
    supports_packing: bool = True
    #: whether the head reads one pooled vector, so an IPU pipeline can unroll the model
    #: (`tfbert.distribute.ipu_pipeline`: embeddings, blocks, then the pooled head)
    supports_pipelining: bool = False

    def packed_outputs(self, model: TaskModel, main, hidden, inputs: dict, max_examples_per_pack: int,
                       pooling: str):
        """The packed twin's outputs from the packed hidden states (`tfbert.modeling.packed`).

        Args:
            model: the standard model, whose head layers the twin reuses.
            main: the backbone's main layer (its pooler).
            hidden: ``[packs, seq, hidden]`` states, each example attending only to itself.
            inputs: the packed inputs (``example_ids``, ``example_starts``…).
            max_examples_per_pack: K, the example slots per row.
            pooling: ``model.pooling``.
        """
        raise ConfigError(f"config key 'data.padding': packed does not support task.type {self.type!r}")

    def packed_compile_args(self) -> dict[str, Any]:
        """`compile` arguments of the packed twin: means over labelled items only (empty slots are ignored)."""
        raise ConfigError(f"config key 'data.padding': packed does not support task.type {self.type!r}")

    @abc.abstractmethod
    def evaluate(self, model: tf_keras.Model, data: TaskData, split: str, config: ExperimentConfig,
                 tokenizer) -> dict:
        """A JSON-ready report; ``report["metrics"]`` is a flat dict of floats (logged as ``val_*``)."""

    #: headline numbers of the HTML report: (key in eval_results.json, label)
    report_headlines: tuple[tuple[str, str], ...] = ()
    #: the report's task figures (`tfbert.reporting.figures.FIGURES` names) this task draws
    report_figures: tuple[str, ...] = ()
    #: figures of `report_figures` that the task draws itself, after the shared ones: name -> (title,
    #: caption, ``"module:function"``); the function draws one run's evaluation report on a matplotlib
    #: Axes, ``function(ax, evaluation)`` (imported only when a report is drawn)
    report_figure_drawers: dict[str, tuple[str, str, str]] = {}

    @classmethod
    def card_section(cls, config: ExperimentConfig, label_names: list[str]) -> list[str]:
        """Markdown lines the model card adds for this task: what a user outside tfbert must know
        to reproduce its predictions (multi-label's decision thresholds); none by default."""
        return []

    def degenerate_reason(self, report: dict) -> Optional[str]:
        """Why `report` shows a model no better than a constant guess, or None (the recipes' smoke test)."""
        return None

    def summary(self, report: dict) -> str:
        """One line for the console."""
        return ", ".join(f"{k} {v:.4f}" for k, v in report["metrics"].items())

    @abc.abstractmethod
    def serving_module_class(self) -> type:
        """The task's `tfbert.serving.base.ServingModule` subclass, from its ``serving`` module (imported
        only when asked for: serving needs tensorflow-text)."""

    def export(self, model: tf_keras.Model, tokenizer, label_names: list[str], directory: Path,
               config: ExperimentConfig) -> Path:
        """Write a SavedModel whose `serving_default` takes raw strings (atomically).

        Args:
            model: the (unpacked) task model.
            tokenizer: its Hugging Face fast tokenizer.
            label_names: label order of its outputs.
            directory: where the SavedModel goes.
            config: the experiment config.

        Examples:
            >>> get_task(config.task.type).export(model, tokenizer, labels, "out/sm", config)  # doctest: +SKIP
        """
        return self.serving_module_class()(model, tokenizer, label_names, config).export(directory)


class PooledHeadTask(Task):
    """A task whose head is the sequence classifier's: dropout and a dense layer on one pooled vector.

    Hugging Face's ``*ForSequenceClassification`` head, whatever its outputs mean (one class, several
    labels, a score), declared once so the tasks that share it cannot drift apart.
    """

    hf_auto_class = "TFAutoModelForSequenceClassification"
    # One pooled vector feeds the head, so an IPU pipeline can unroll the model.
    supports_pipelining = True

    def has_hf_head(self, config: ExperimentConfig) -> bool:
        # Only the pooler head is transformers' own; [CLS] and mean vectors have no class.
        return config.model.pooling == "pooler"

    def build_model(self, backbone, config: ExperimentConfig, num_labels: int, input_names: list[str]) -> TaskModel:
        return build_sequence_classifier(
            backbone, num_labels, input_names, pooling=config.model.pooling, dropout=config.model.classifier_dropout,
            gradient_accumulation_steps=config.training.gradient_accumulation_steps, seed=config.training.seed)
