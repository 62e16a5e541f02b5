"""Sequence classification: single sentences or pairs, binary or multi-class."""
from __future__ import annotations

import tf_keras

from tfbert.data.classification import load_classification_data
from tfbert.evaluation.classification import classification_metrics
from tfbert.evaluation.predict import predict_logits
from tfbert.modeling.losses import MaskedAccuracy, split_loss
from tfbert.modeling.packed import packed_sequence_vector
from tfbert.tasks.base import PooledHeadTask, TaskData
from tfbert.tasks.losses import labelled_only
from tfbert.tasks.sequence_classification.config import SPEC


class SequenceClassification(PooledHeadTask):
    """One label per text (or text pair): softmax over the labels.

    Examples:
        >>> task = get_task("sequence_classification")  # doctest: +SKIP
        >>> report = task.evaluate(model, data, "test", config, tokenizer)  # doctest: +SKIP
    """

    spec = SPEC
    evaluates_from_records = True
    pipeline_tag = ("text-classification", "Text Classification")
    hub_metrics = {"loss": None, "accuracy": ("accuracy", "Accuracy"), "macro_f1": ("f1", "Macro F1")}

    def load_data(self, config, tokenizer, seed, label_names=None, splits=None) -> TaskData:
        return load_classification_data(config.data, tokenizer, seed=seed, label_names=label_names, splits=splits)

    def loss(self):
        return tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def compile_args(self):
        return {"loss": self.loss(),
                "metrics": [tf_keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def packed_outputs(self, model, main, hidden, inputs, max_examples_per_pack, pooling):
        vector = packed_sequence_vector(main, hidden, inputs, max_examples_per_pack, pooling)
        return model.get_layer("classifier")(model.get_layer("classifier_dropout")(vector))

    def packed_compile_args(self):
        return {"loss": labelled_only(self.loss()), "metrics": [MaskedAccuracy(name="accuracy")]}

    def evaluate(self, model, data, split, config, tokenizer) -> dict:
        encoded = data.splits[split]
        logits = predict_logits(model, encoded, config.training.per_device_eval_batch_size, tokenizer.pad_token_id)
        report = classification_metrics(encoded.labels, logits.argmax(axis=1), data.label_names)
        report["loss"] = split_loss(self.loss(), encoded.labels, logits) if len(encoded.labels) else 0.0
        report["metrics"] = {k: report[k] for k in self.metric_names}
        return report

    report_headlines = (("accuracy", "accuracy"), ("macro_f1", "macro F1"), ("loss", "loss"))
    report_figures = ("confusion_matrix", "per_class")

    def degenerate_reason(self, report: dict):
        from tfbert.evaluation.sanity import constant_guess_reason

        return constant_guess_reason(report["confusion_matrix"])

    def summary(self, report: dict) -> str:
        return (f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}, "
                + ", ".join(f"{n} F1 {s['f1']:.4f}" for n, s in report["per_class"].items()))

    def serving_module_class(self):
        from tfbert.tasks.sequence_classification.serving import ClassifierServingModule

        return ClassifierServingModule
