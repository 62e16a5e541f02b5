"""A task's packed loss is its one loss (`Task.loss`), averaged over the slots that hold an example.

A packed batch has a fixed number of example slots per row, and the empty ones carry the label
IGNORE_INDEX. Wrapping the task's own loss, rather than writing a masked twin of it, keeps packed
and unpacked training on one definition. The mask multiplies instead of selecting rows, so shapes
stay static, as TPUs and IPUs (where packing is the default) need.
"""
from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

from tfbert.data.encoding import IGNORE_INDEX


@tf_keras.utils.register_keras_serializable(package="tfbert")
class LabelledOnly(tf_keras.losses.Loss):
    """`loss` per labelled position (label != IGNORE_INDEX), then their mean: one scalar per batch.

    Args:
        loss: a Keras loss on (class ids ``[n]``, logits ``[n, classes]``), e.g. `Task.loss()`.
    """

    #: the labels' dtype as `loss` reads them: class ids (a subclass may read float targets)
    label_dtype = tf.int32

    def __init__(self, loss: tf_keras.losses.Loss, name: str | None = None, **kwargs):
        super().__init__(name=name or f"labelled_{loss.name}", **kwargs)
        self.loss = loss

    def call(self, y_true, y_pred):
        classes = tf.shape(y_pred)[-1]
        labels = tf.reshape(tf.cast(y_true, self.label_dtype), [-1])
        logits = tf.reshape(tf.cast(y_pred, tf.float32), [-1, classes])
        mask = tf.not_equal(labels, tf.cast(IGNORE_INDEX, self.label_dtype))
        # per position, before any reduction
        values = self.loss.call(tf.where(mask, labels, tf.zeros_like(labels)), logits)
        mask = tf.cast(mask, tf.float32)
        # One scalar per batch: Keras' SUM_OVER_BATCH_SIZE then divides by 1.
        return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": tf_keras.losses.serialize(self.loss)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LabelledOnly":
        config = dict(config)
        return cls(tf_keras.losses.deserialize(config.pop("loss")), **config)


def labelled_only(loss: Any) -> Any:
    """`LabelledOnly` around a loss, or around each loss of a per-output dict (QA's start and end)."""
    if isinstance(loss, dict):
        return {name: LabelledOnly(value) for name, value in loss.items()}
    return LabelledOnly(loss)


__all__ = ["LabelledOnly", "labelled_only"]
