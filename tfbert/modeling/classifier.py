"""Sequence classification: backbone -> pooled vector -> dropout -> dense logits (float32)."""
from __future__ import annotations

import tensorflow as tf
import tf_keras

from tfbert.modeling.backbone import (
    backbone_outputs, freeze_unused_pooler, head_initializer, model_inputs, require_pooler,
)
from tfbert.modeling.task_model import TaskModel


def reads_first_token_only(pooling: str) -> bool:
    """Whether the head reads position 0 alone ([CLS], the pooler), so the encoder's last block may skip the rest."""
    return pooling in ("cls", "pooler")


def pool(hidden: tf.Tensor, pooled, attention_mask, pooling: str) -> tf.Tensor:
    """The sentence vector: [CLS] hidden state, the pooler's output (`pooled`), or a masked mean."""
    if pooling == "cls":
        return hidden[:, 0, :]
    if pooling == "pooler":
        return pooled
    mask = tf.cast(attention_mask, hidden.dtype)[:, :, None]
    return tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def build_sequence_classifier(
    backbone,
    num_labels: int,
    input_names: list[str],
    pooling: str = "cls",
    dropout: float = 0.1,
    gradient_accumulation_steps: int = 1,
    seed: int = 0,
) -> TaskModel:
    """A Functional `TaskModel` returning float32 logits of shape [batch, num_labels]."""
    inputs = model_inputs(input_names)
    if pooling == "pooler":
        require_pooler(backbone)
    else:
        freeze_unused_pooler(backbone)
    hidden, pooled = backbone_outputs(backbone, inputs, pooled=pooling == "pooler",
                                      first_token_only=reads_first_token_only(pooling))
    vector = pool(hidden, pooled, inputs["attention_mask"], pooling)
    vector = tf_keras.layers.Dropout(dropout, seed=seed, name="classifier_dropout")(vector)
    # float32 output keeps the softmax and loss stable under mixed precision.
    logits = tf_keras.layers.Dense(
        num_labels, kernel_initializer=head_initializer(backbone, seed), dtype="float32", name="classifier"
    )(vector)
    return TaskModel(
        inputs=inputs, outputs=logits, name="sequence_classifier",
        gradient_accumulation_steps=gradient_accumulation_steps,
    )
