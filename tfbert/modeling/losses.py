"""Losses and metrics over labelled positions only (token labels use IGNORE_INDEX = -100)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from tfbert.data.encoding import IGNORE_INDEX


def split_loss(loss: tf_keras.losses.Loss, y_true, y_pred) -> float:
    """`loss` over a whole split, reduced as `compile` reduces it (the mean over examples).

    Per-example values, then a mean: Keras refuses its default reduction inside a
    `tf.distribute` strategy scope outside `compile`, and evaluation runs in that scope. Sets
    `loss.reduction` (pass a loss object of its own, as `Task.loss()` returns).
    """
    loss.reduction = tf_keras.losses.Reduction.NONE
    return float(np.mean(loss(y_true, y_pred)))


@tf_keras.utils.register_keras_serializable(package="tfbert")
class MaskedSparseCategoricalCrossentropy(tf_keras.losses.Loss):
    """Softmax cross-entropy on logits, averaged over positions whose label is not IGNORE_INDEX."""

    def __init__(self, name: str = "masked_sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.int32)
        mask = tf.not_equal(y_true, IGNORE_INDEX)
        safe = tf.where(mask, y_true, 0)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=tf.cast(y_pred, tf.float32))
        mask = tf.cast(mask, tf.float32)
        # One scalar per batch: Keras' SUM_OVER_BATCH_SIZE then divides by 1.
        return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


@tf_keras.utils.register_keras_serializable(package="tfbert")
class MaskedAccuracy(tf_keras.metrics.Metric):
    """Accuracy of argmax(logits) over labelled positions."""

    def __init__(self, name: str = "token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_weight("correct", initializer="zeros")
        self.total = self.add_weight("total", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int32)
        mask = tf.cast(tf.not_equal(y_true, IGNORE_INDEX), tf.float32)
        hits = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1, output_type=tf.int32), y_true), tf.float32)
        self.correct.assign_add(tf.reduce_sum(hits * mask))
        self.total.assign_add(tf.reduce_sum(mask))

    def result(self):
        return self.correct / tf.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)
