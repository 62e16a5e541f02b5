"""SavedModel for multi-label classification: raw strings in, each label's probability and the
labels over their decision thresholds out.

``serving_default`` takes ``text`` (plus ``text_pair`` for pair tasks) and returns
``probabilities`` [batch, num_labels] (a sigmoid per label), ``label_mask`` int32 [batch,
num_labels] (1 where a probability reaches its label's threshold), ``labels`` (string [batch, max
predicted], padded with ""), ``num_predicted`` (int32 [batch]), ``threshold`` (float32 [batch,
num_labels]: each label's threshold) and ``logits``. The thresholds are the config's
(`MultiLabelConfig.decision_thresholds`: fixed, or tuned on validation globally or per label),
baked into the graph as a constant so a client needs nothing but the SavedModel.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.tasks.sequence_classification.serving import ClassifierServingModule


class MultiLabelServingModule(ClassifierServingModule):
    """The classifier's graph with a sigmoid per label and a threshold instead of softmax and arg-max."""

    def __init__(self, model, hf_tokenizer, label_names: list[str], config: ExperimentConfig):
        super().__init__(model, hf_tokenizer, label_names, config)
        self.thresholds = tf.constant(config.task.decision_thresholds(len(label_names)), tf.float32)

    def outputs(self, logits: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.sigmoid(logits)
        mask = probabilities >= self.thresholds[None, :]
        batch = tf.shape(logits)[0]
        names = tf.tile(self.label_table[None, :], [batch, 1])
        return {"logits": logits, "probabilities": probabilities, "label_mask": tf.cast(mask, tf.int32),
                "labels": tf.ragged.boolean_mask(names, mask).to_tensor(default_value=""),
                "num_predicted": tf.reduce_sum(tf.cast(mask, tf.int32), axis=-1),
                "threshold": tf.tile(self.thresholds[None, :], [batch, 1])}

    @classmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        record = {k: v[i] for k, v in inputs.items()}
        n = int(out["num_predicted"][i])
        record.update(labels=[v.decode("utf-8") for v in out["labels"][i][:n]],
                      probabilities=[float(p) for p in out["probabilities"][i]])
        return record, f"{','.join(record['labels']) or '(none)'}\t{record['text']}"

    @classmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        return "label_mask" in outputs


__all__ = ["MultiLabelServingModule"]
