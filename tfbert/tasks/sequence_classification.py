"""Sequence classification: single sentences or pairs, binary or multi-class."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import tf_keras

from tfbert.config import ExperimentConfig
from tfbert.data.classification import load_classification_data
from tfbert.evaluation.classification import classification_metrics, softmax_cross_entropy
from tfbert.evaluation.predict import predict_logits
from tfbert.modeling.classifier import build_sequence_classifier
from tfbert.tasks.base import Task, TaskData


class SequenceClassification(Task):
    type = "sequence_classification"
    metric_names = ("loss", "accuracy", "macro_f1")
    train_metric_names = ("accuracy",)

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        data_config = config.data
        if splits:
            data_config = dataclasses.replace(
                data_config, train_file=splits.get("train"), validation_file=splits.get("validation"),
                test_file=splits.get("test"), validation_split=0.0, test_split=0.0)
        return load_classification_data(data_config, tokenizer, seed=seed, label_names=label_names)

    def build_model(self, backbone, config, num_labels, input_names):
        return build_sequence_classifier(
            backbone, num_labels, input_names, pooling=config.model.pooling,
            dropout=config.model.classifier_dropout,
            gradient_accumulation_steps=config.training.gradient_accumulation_steps, seed=config.training.seed,
        )

    def compile_args(self):
        return {"loss": tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                "metrics": [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_logits(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        report = classification_metrics(encoded.labels, logits.argmax(axis=1), data.label_names)
        report["loss"] = softmax_cross_entropy(logits, encoded.labels)
        report["metrics"] = {"loss": report["loss"], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        return report

    def summary(self, report: dict) -> str:
        return (f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}, "
                + ", ".join(f"{n} F1 {s['f1']:.4f}" for n, s in report["per_class"].items()))

    def export(self, model, tokenizer, label_names, directory: Path, config: ExperimentConfig) -> Path:
        from tfbert.serving.export import export_saved_model

        return export_saved_model(model, tokenizer, label_names, directory, max_seq_length=config.data.max_seq_length,
                                  text_pairs=bool(config.data.text_pair_column))
