"""Multi-label classification: several labels per text, a sigmoid per label, a tuned threshold.

Labels come as a delimited column (``"8,20"``; ``data.label_delimiter``) or a JSON list
(``["joy", "love"]``), as names or, with ``data.labels_are_ids``, as indexes into ``data.labels``
(GoEmotions' files). The head is the sequence classifier's (one logit per label); the loss is the
mean binary cross-entropy over labels and examples (Hugging Face's ``BCEWithLogitsLoss``, which
``problem_type: multi_label_classification`` selects), and the same Keras loss object scores
training batches and evaluation. A label is predicted when its probability reaches the decision
threshold: ``task.threshold`` if set, else the one that maximises micro F1 on the validation split
(tuned again at each evaluation; the last value is recorded as ``task.tuned_threshold`` in the
saved model's config, which the SavedModel and later evaluations use).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.config import DataConfig, ExperimentConfig, TaskConfig, file_list
from tfbert.data.encoding import tokenize_split
from tfbert.data.readers import check_texts, concatenate_tables, read_table, require_columns
from tfbert.errors import ConfigError, DataError
from tfbert.evaluation.predict import predict_logits
from tfbert.modeling.classifier import build_sequence_classifier
from tfbert.modeling.losses import split_loss
from tfbert.tasks.base import Task, TaskData
from tfbert.tasks.registry import register_task

#: candidate thresholds for tuning on validation
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


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

    #: decision threshold on each label's probability; null: tuned on the validation split
    threshold: Optional[float] = None
    #: the threshold tuned on validation (written at evaluation; used when threshold is null)
    tuned_threshold: Optional[float] = None

    def decision_threshold(self) -> float:
        """The threshold in force: ``threshold``, else ``tuned_threshold``, else 0.5 (training and serving)."""
        if self.threshold is not None:
            return self.threshold
        return 0.5 if self.tuned_threshold is None else self.tuned_threshold

    def validate(self, config: ExperimentConfig) -> None:
        for key in ("threshold", "tuned_threshold"):
            value = getattr(self, key)
            if value is not None and not 0.0 < value < 1.0:
                raise ConfigError(f"config key 'task.{key}': must be in (0, 1) or null, got {value}")
        if config.data.labels_are_ids and not config.data.labels:
            raise ConfigError("config key 'data.labels_are_ids': needs data.labels (the names the ids point at)")
        if config.data.tfrecords:
            # tools/make_tfrecords.py writes one label id per example.
            raise ConfigError("config key 'data.tfrecords': multi_label_classification reads its data files")
        if config.data.padding == "packed":
            raise ConfigError("config key 'data.padding': packed does not support task.type multi_label_classification")


@tf_keras.utils.register_keras_serializable(package="tfbert")
class MultiLabelBinaryCrossentropy(tf_keras.losses.Loss):
    """Sigmoid cross-entropy on logits, the mean over every (example, label) of a batch."""

    def __init__(self, name: str = "multi_label_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(y_true, tf.float32),
                                                         logits=tf.cast(y_pred, tf.float32))
        return tf.reduce_mean(losses, axis=-1)


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


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


@register_task
class MultiLabelClassification(Task):
    """Several labels per text: sigmoid per label, binary cross-entropy, a threshold tuned on validation.

    Examples:
        >>> config = load_config("configs/goemotions_minilm.yaml")  # doctest: +SKIP
        >>> task = get_task(config.task.type)  # doctest: +SKIP
        >>> report = task.evaluate(model, data, "validation", config, tokenizer)  # doctest: +SKIP
        >>> report["micro_f1"], report["threshold"]  # doctest: +SKIP
    """

    type = "multi_label_classification"
    config_class = MultiLabelConfig
    data_config_class = MultiLabelDataConfig
    metric_names = ("loss", "micro_f1", "macro_f1", "subset_accuracy")
    train_metric_names = ("label_accuracy",)
    hf_auto_class = "TFAutoModelForSequenceClassification"
    pipeline_tag = ("text-classification", "Text Classification")
    report_headlines = (("micro_f1", "micro F1"), ("macro_f1", "macro F1"), ("subset_accuracy", "subset accuracy"),
                        ("threshold", "threshold"), ("loss", "loss"))
    report_figures = ("per_class",)
    # No packed head yet: TPU and IPU run it with data.padding max_length.
    supports_packing = False

    def has_hf_head(self, config) -> bool:
        return config.model.pooling == "pooler"

    def hf_config_updates(self, label_names):
        return {**super().hf_config_updates(label_names), "problem_type": "multi_label_classification"}

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        d = config.data
        files = splits or {"train": d.train_files(), "validation": d.validation_file, "test": d.test_file}
        files = {s: file_list(p) for s, p in files.items() if p}
        if not files:
            raise DataError("config key 'data.train_file': no data files configured")
        texts = [d.text_column] + ([d.text_pair_column] if d.text_pair_column else [])
        # Each file is read and checked on its own, so that errors name the file and its row.
        parts: dict[str, list[tuple[str, object, list[list[str]]]]] = {}
        for split, paths in files.items():
            for path in paths:
                table = read_table(path, d)
                require_columns(table, texts + [d.label_column], path)
                table = table.select_columns(texts + [d.label_column])
                check_texts(table, texts, path)
                parsed = []
                for r, value in enumerate(table[d.label_column]):
                    try:
                        parsed.append(parse_labels(value, d.label_delimiter))
                    except ValueError as exc:
                        raise DataError(f"{path}, row {r + 1}: column {d.label_column!r}: {exc}") from None
                parts.setdefault(split, []).append((str(path), table, parsed))
        tables = {s: concatenate_tables([t for _, t, _ in c], [p for p, _, _ in c]) for s, c in parts.items()}
        rows = {s: [r for _, _, parsed in c for r in parsed] for s, c in parts.items()}
        names = list(label_names or d.labels or [])
        if not names:
            if "train" not in rows:
                raise DataError("labels unknown: set data.labels or data.train_file")
            names = sorted({label for row in rows["train"] for label in row})
        if len(names) < 2:
            raise DataError(f"{' + '.join(files.get('train', []))}: multi-label classification needs at least two labels, got {names}")
        targets = {s: np.concatenate([multi_hot(parsed, names, d.labels_are_ids, path, d.label_column)
                                      for path, _, parsed in c]) for s, c in parts.items()}
        for split, fraction in (("test", d.test_split), ("validation", d.validation_split)):
            if fraction and split not in tables:
                if "train" not in tables:
                    raise DataError(f"config key 'data.{split}_split': needs data.train_file to split from")
                # Multi-label rows have no single class to stratify by: a seeded random split.
                order = np.random.default_rng([seed, len(split)]).permutation(len(tables["train"]))
                held = order[: int(round(fraction * len(tables["train"])))]
                kept = np.sort(np.setdiff1d(order, held))
                held = np.sort(held)
                tables[split], targets[split] = tables["train"].select(held), targets["train"][held]
                tables["train"], targets["train"] = tables["train"].select(kept), targets["train"][kept]
        data = TaskData(label_names=names)
        for split, table in tables.items():
            data.extras[split] = [table[c] for c in texts]
            data.splits[split] = tokenize_split(table, tokenizer, d.text_column, d.text_pair_column, d.max_seq_length,
                                                targets[split])
        return data

    def build_model(self, backbone, config, num_labels, input_names):
        return build_sequence_classifier(
            backbone, num_labels, input_names, pooling=config.model.pooling, dropout=config.model.classifier_dropout,
            gradient_accumulation_steps=config.training.gradient_accumulation_steps, seed=config.training.seed)

    def loss(self) -> tf_keras.losses.Loss:
        """The one loss definition: training compiles it, evaluation calls it on the predicted logits."""
        return MultiLabelBinaryCrossentropy()

    def compile_args(self):
        # threshold 0 on logits is probability 0.5
        return {"loss": self.loss(), "metrics": [tf_keras.metrics.BinaryAccuracy(name="label_accuracy", threshold=0.0)]}

    def decision_threshold(self, model, data: TaskData, config, tokenizer,
                           logits: Optional[dict[str, np.ndarray]] = None) -> float:
        """``task.threshold``; else tuned on validation (recorded as ``task.tuned_threshold``); else 0.5.

        `logits`: splits already predicted (split name -> logits), so validation is not predicted twice.
        """
        if config.task.threshold is None and "validation" in data.splits:
            split = data.splits["validation"]
            known = (logits or {}).get("validation")
            if known is None:
                known = predict_logits(model, split, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
            config.task.tuned_threshold = tune_threshold(split.labels, _sigmoid(known))
        return config.task.decision_threshold()

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_logits(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        threshold = self.decision_threshold(model, data, config, tokenizer, logits={split: logits})
        predicted = (_sigmoid(logits) >= threshold).astype(np.float32)
        report = multi_label_metrics(encoded.labels, predicted, data.label_names)
        report["threshold"] = threshold
        report["loss"] = split_loss(self.loss(), encoded.labels, logits)
        report["metrics"] = {k: report[k] for k in self.metric_names}
        return report

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
        return (f"micro F1 {report['micro_f1']:.4f}, macro F1 {report['macro_f1']:.4f}, subset accuracy "
                f"{report['subset_accuracy']:.4f} at threshold {report['threshold']:.2f}")

    def serving_module_class(self):
        from tfbert.serving.multi_label import MultiLabelServingModule

        return MultiLabelServingModule


__all__ = ["MultiLabelBinaryCrossentropy", "MultiLabelClassification", "MultiLabelConfig", "MultiLabelDataConfig",
           "multi_label_metrics", "parse_labels", "tune_threshold"]
