"""Multi-label classification: several labels per text, a sigmoid per label, tuned thresholds.

Labels come as a delimited column (``"8,20"``; ``data.label_delimiter``) or a JSON list
(``["joy", "love"]``), as names or, with ``data.labels_are_ids``, as indexes into ``data.labels``
(GoEmotions' files). The head is the sequence classifier's (one logit per label); the loss is the
mean binary cross-entropy over labels and examples (Hugging Face's ``BCEWithLogitsLoss``, which
``problem_type: multi_label_classification`` selects), and the same Keras loss object scores
training batches and evaluation.

A label is predicted when its probability reaches its decision threshold. ``task.threshold`` fixes
one for every label; otherwise thresholds are tuned on the validation split at each evaluation:
one global threshold (best micro F1), and with ``task.threshold_rule: per_label`` also one per
label (that label's best F1). A label with too few positive validation examples
(``task.threshold_min_support``) keeps the global threshold: an F1 maximised over a handful of
examples picks noise, and rare labels are where macro F1 is won or lost. The last tuned values are
recorded as ``task.tuned_threshold`` / ``task.tuned_thresholds`` in the saved model's config, which
the SavedModel, the model card and later evaluations use.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.data.classification import LabelColumn, load_classification_data
from tfbert.errors import ConfigError, DataError
from tfbert.evaluation.predict import predict_logits
from tfbert.modeling.losses import split_loss
from tfbert.tasks.base import PooledHeadTask, TaskData
from tfbert.tasks.multi_label_classification.config import SPEC, MultiLabelConfig, MultiLabelDataConfig

#: candidate thresholds for tuning on validation
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


@tf_keras.utils.register_keras_serializable(package="tfbert")
class MultiLabelBinaryCrossentropy(tf_keras.losses.Loss):
    """Sigmoid cross-entropy on logits, the mean over every (example, label) of a batch.

    Args:
        pos_weight: one weight per label on its positive term (``task.pos_weight``); None: plain BCE.
    """

    def __init__(self, pos_weight: Optional[Sequence[float]] = None, name: str = "multi_label_binary_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = None if pos_weight is None else [float(w) for w in pos_weight]

    def call(self, y_true, y_pred):
        labels, logits = tf.cast(y_true, tf.float32), tf.cast(y_pred, tf.float32)
        if self.pos_weight is None:
            losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        else:
            losses = tf.nn.weighted_cross_entropy_with_logits(labels=labels, logits=logits,
                                                              pos_weight=tf.constant(self.pos_weight, tf.float32))
        return tf.reduce_mean(losses, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "pos_weight": self.pos_weight}


def parse_labels(value: object, delimiter: str) -> list[str]:
    """One row's labels: a JSON list, or a `delimiter`-separated string (empty: no label)."""
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value]
    text = "" if value is None else str(value).strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"not a JSON list: {text[:60]!r}") from None
        return [str(v).strip() for v in items]
    return [part.strip() for part in text.split(delimiter) if part.strip()]


def multi_hot(rows: list[list[str]], names: list[str], by_id: bool, path: str, column: str) -> np.ndarray:
    """[rows, labels] float32 0/1; a `DataError` naming the row for an unknown label."""
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(rows), len(names)), np.float32)
    for r, labels in enumerate(rows):
        for label in labels:
            i = (int(label) if label.lstrip("-").isdigit() else -1) if by_id else index.get(label, -1)
            if not 0 <= i < len(names):
                expected = f"ids 0-{len(names) - 1}" if by_id else f"one of {names}"
                raise DataError(f"{path}, row {r + 1}: label {label!r} in column {column!r} is not {expected}")
            out[r, i] = 1.0
    return out


class MultiLabelColumn(LabelColumn):
    """A multi-label label column: several labels per cell, encoded as a 0/1 row per example.

    Args:
        delimiter: ``data.label_delimiter`` (a JSON list cell is read as a list).
        by_id: ``data.labels_are_ids``: the labels are indexes into the label names.
    """

    # Multi-label rows have no single class to stratify by: held-out rows are drawn at random.
    stratify = False

    def __init__(self, delimiter: str, by_id: bool):
        self.delimiter, self.by_id = delimiter, by_id

    def parse(self, values: Sequence[object], path: str, column: str) -> list[list[str]]:
        return self.parse_cells(values, lambda value: parse_labels(value, self.delimiter), path, column)

    def infer_names(self, rows: list[list[str]], source: str, column: str) -> list[str]:
        names = sorted({label for row in rows for label in row})
        if len(names) < 2:
            raise DataError(f"{source}: multi-label classification needs at least two labels, got {names}")
        return names

    def encode(self, rows: list[list[str]], names: list[str], path: str, column: str) -> np.ndarray:
        return multi_hot(rows, names, self.by_id, path, column)


def multi_label_metrics(gold: np.ndarray, predicted: np.ndarray, label_names: list[str]) -> dict:
    """Micro/macro F1, per-label P/R/F1 and subset accuracy of 0/1 matrices [examples, labels]."""
    tp = (gold * predicted).sum(axis=0)
    fp = ((1 - gold) * predicted).sum(axis=0)
    fn = (gold * (1 - predicted)).sum(axis=0)

    def prf(tp, fp, fn):
        p = tp / np.maximum(tp + fp, 1)
        r = tp / np.maximum(tp + fn, 1)
        return p, r, 2 * p * r / np.maximum(p + r, 1e-12)

    p, r, f1 = prf(tp, fp, fn)
    mp, mr, mf1 = prf(tp.sum(), fp.sum(), fn.sum())
    return {
        "num_examples": int(len(gold)),
        "micro_precision": float(mp), "micro_recall": float(mr), "micro_f1": float(mf1),
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "subset_accuracy": float((gold == predicted).all(axis=1).mean()) if len(gold) else 0.0,
        "per_class": {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]),
                          "support": int(gold[:, i].sum())} for i, n in enumerate(label_names)},
    }


def tune_threshold(gold: np.ndarray, probabilities: np.ndarray) -> float:
    """The candidate threshold with the best micro F1 (the lowest of equals)."""
    scores = [multi_label_metrics(gold, (probabilities >= t).astype(np.float32), [])["micro_f1"] for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


def tune_label_thresholds(gold: np.ndarray, probabilities: np.ndarray, fallback: float,
                          min_support: int) -> np.ndarray:
    """Each label's candidate threshold with its best F1 (the lowest of equals) on [examples, labels].

    A label with fewer than `min_support` positive examples gets `fallback` (the global threshold).
    """
    candidates = np.asarray(THRESHOLDS, np.float64)
    predicted = probabilities[:, :, None] >= candidates[None, None, :]  # [examples, labels, candidates]
    positive = gold[:, :, None] > 0.5
    tp = (predicted & positive).sum(axis=0)
    fp = (predicted & ~positive).sum(axis=0)
    fn = (~predicted & positive).sum(axis=0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # [labels, candidates]
    tuned = candidates[np.argmax(f1, axis=1)]
    return np.where(gold.sum(axis=0) >= min_support, tuned, fallback)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class MultiLabelClassification(PooledHeadTask):
    """Several labels per text: sigmoid per label, binary cross-entropy, a threshold tuned on validation.

    Examples:
        >>> config = load_config("configs/goemotions_minilm.yaml")  # doctest: +SKIP
        >>> task = get_task(config.task.type)  # doctest: +SKIP
        >>> report = task.evaluate(model, data, "validation", config, tokenizer)  # doctest: +SKIP
        >>> report["micro_f1"], report["threshold"]  # doctest: +SKIP
    """

    spec = SPEC
    pipeline_tag = ("text-classification", "Text Classification")
    hub_metrics = {"loss": None, "micro_f1": ("f1", "Micro F1"), "macro_f1": ("f1", "Macro F1"),
                   "subset_accuracy": ("accuracy", "Subset Accuracy")}
    # A row of 0/1 per example; evaluation needs nothing but the encoded examples.
    record_label_dtype = "float32"
    evaluates_from_records = True
    report_headlines = (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("subset_accuracy", "subset accuracy"),
                        ("threshold", "threshold"), ("loss", "loss"))
    report_figures = ("per_class",)
    # No packed head yet: TPU and IPU run it with data.padding max_length.
    supports_packing = False

    def hf_config_updates(self, label_names):
        return {**super().hf_config_updates(label_names), "problem_type": "multi_label_classification"}

    #: ``task.pos_weight`` of the config the data was loaded with: the loss's per-label weights
    pos_weight: Optional[list[float]] = None
    #: each label's share of the training rows the data was loaded with (`task.initial_bias`)
    label_frequencies: Optional[np.ndarray] = None

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        # `loss()` and `build_model` do not see the data: what they need is kept from here.
        self.pos_weight = config.task.pos_weight
        d = config.data
        data = load_classification_data(d, tokenizer, seed=seed, label_names=label_names, splits=splits,
                                        labels=MultiLabelColumn(d.label_delimiter, d.labels_are_ids))
        if "train" in data.splits:
            labels = data.splits["train"].labels
            # +0.5 / +1: a label absent from training gets a finite, very negative log-odds
            self.label_frequencies = (labels.sum(axis=0) + 0.5) / (len(labels) + 1)
        return data

    def build_model(self, backbone, config, num_labels, input_names):
        model = super().build_model(backbone, config, num_labels, input_names)
        if config.task.initial_bias == "label_prior":
            if self.label_frequencies is None or len(self.label_frequencies) != num_labels:
                raise ConfigError("config key 'task.initial_bias': label_prior needs the training labels "
                                  "(data.train_file; TFRecords alone do not carry them to the head)")
            p = self.label_frequencies
            model.get_layer(self.head_name).bias.assign(np.log(p / (1 - p)).astype(np.float32))
        return model

    def loss(self) -> tf_keras.losses.Loss:
        """The one loss definition: training compiles it, evaluation calls it on the predicted logits."""
        return MultiLabelBinaryCrossentropy(self.pos_weight)

    def compile_args(self):
        # threshold 0 on logits is probability 0.5
        return {"loss": self.loss(), "metrics": [tf_keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=0.0)]}

    def decision_thresholds(self, model, data: TaskData, config, tokenizer,
                            logits: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Each label's threshold: ``task.threshold``; else tuned on validation; else the stored ones.

        Tuning writes ``task.tuned_threshold`` (and, per label, ``task.tuned_thresholds``) into
        `config`, which is what the saved model's config and the SavedModel then carry. `logits`:
        splits already predicted (split name -> logits), so validation is not predicted twice.
        """
        task = config.task
        if task.threshold is None and "validation" in data.splits:
            split = data.splits["validation"]
            known = (logits or {}).get("validation")
            if known is None:
                known = predict_logits(model, split, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
            probabilities = _sigmoid(known)
            task.tuned_threshold = tune_threshold(split.labels, probabilities)
            if task.threshold_rule == "per_label":
                task.tuned_thresholds = [float(t) for t in tune_label_thresholds(
                    split.labels, probabilities, task.tuned_threshold, task.threshold_min_support)]
        return np.asarray(task.decision_thresholds(len(data.label_names)), np.float32)

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_logits(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        thresholds = self.decision_thresholds(model, data, config, tokenizer, logits={split: logits})
        predicted = (_sigmoid(logits) >= thresholds[None, :]).astype(np.float32)
        report = multi_label_metrics(encoded.labels, predicted, data.label_names)
        for name, threshold in zip(data.label_names, thresholds):
            report["per_class"][name]["threshold"] = float(threshold)
        # the global threshold: the fixed one, or the tuned one labels under the support floor keep
        fixed, tuned = config.task.threshold, config.task.tuned_threshold
        report["threshold"] = float(fixed if fixed is not None else tuned if tuned is not None else 0.5)
        report["threshold_rule"] = "fixed" if config.task.threshold is not None else config.task.threshold_rule
        if report["threshold_rule"] == "per_label":
            report["threshold_min_support"] = config.task.threshold_min_support
        report["loss"] = split_loss(self.loss(), encoded.labels, logits)
        report["metrics"] = {k: report[k] for k in self.metric_names}
        return report

    @classmethod
    def card_section(cls, config, label_names: list[str]) -> list[str]:
        """The thresholds in force, so the transformers directory alone reproduces the SavedModel's labels."""
        task = config.task
        thresholds = task.decision_thresholds(len(label_names))
        if task.threshold is not None:
            how = "fixed by `task.threshold`"
        elif task.tuned_threshold is None and task.tuned_thresholds is None:
            how = "the default; nothing was tuned (no validation split)"
        elif task.threshold_rule == "per_label":
            how = (f"tuned per label on the validation split for that label's F1; labels with under "
                   f"{task.threshold_min_support} positive validation examples keep the global "
                   f"{task.tuned_threshold:.2f}, tuned for micro F1")
        else:
            how = "tuned on the validation split for micro F1"
        lines = ["## Decision thresholds", "",
                 f"A label is predicted when its sigmoid probability reaches its threshold ({how}). Without "
                 "tfbert: `pipeline(\"text-classification\", model=DIR, framework=\"tf\", dtype=None, "
                 "top_k=None, function_to_apply=\"sigmoid\", model_kwargs={\"use_safetensors\": False})` "
                 "(transformers 4's TF classes cannot read the PyTorch-format model.safetensors without torch), "
                 "then keep each label whose score is at least its threshold "
                 "(`task.tuned_thresholds` / `task.tuned_threshold` in `tfbert_config.yaml` hold the same values).",
                 ""]
        if min(thresholds) == max(thresholds):
            return lines + [f"Threshold for every label: {thresholds[0]:.2f}", ""]
        return lines + ["| label | threshold |", "|---|---|"] + [
            f"| `{name}` | {t:.2f} |" for name, t in zip(label_names, thresholds)] + [""]

    def degenerate_reason(self, report: dict):
        # The constant guess: the commonest label for every example (GoEmotions: neutral).
        supports = {name: scores["support"] for name, scores in report["per_class"].items()}
        common = max(supports, key=supports.get)
        baseline = 2 * supports[common] / max(report["num_examples"] + sum(supports.values()), 1)
        if report["micro_f1"] <= baseline + 1e-6:  # float32 metrics vs this float64 baseline
            return (f"micro F1 {report['micro_f1']:.4f} is no better than always predicting {common} "
                    f"({baseline:.4f})")
        return None

    def summary(self, report: dict) -> str:
        line = (f"micro F1 {report['micro_f1']:.4f}, macro F1 {report['macro_f1']:.4f}, subset accuracy "
                f"{report['subset_accuracy']:.4f}")
        thresholds = [label["threshold"] for label in report["per_class"].values()]
        if report.get("threshold_rule") != "per_label" or min(thresholds) == max(thresholds):
            return f"{line} at threshold {report['threshold']:.2f}"
        return (f"{line} at per-label thresholds {min(thresholds):.2f}-{max(thresholds):.2f} (the global "
                f"{report['threshold']:.2f} for labels with under {report['threshold_min_support']} positive "
                "validation examples)")

    def serving_module_class(self):
        from tfbert.tasks.multi_label_classification.serving import MultiLabelServingModule

        return MultiLabelServingModule


__all__ = ["MultiLabelBinaryCrossentropy", "MultiLabelClassification", "MultiLabelColumn", "MultiLabelConfig",
           "MultiLabelDataConfig", "multi_label_metrics", "parse_labels", "tune_label_thresholds",
           "tune_threshold"]
