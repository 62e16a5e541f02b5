"""Token classification: backbone -> per-token dropout -> dense logits (float32)."""
from __future__ import annotations

import tf_keras

from tfbert.modeling.backbone import backbone_outputs, freeze_unused_pooler, head_initializer, model_inputs
from tfbert.modeling.task_model import TaskModel


def build_token_classifier(backbone, num_labels: int, input_names: list[str], dropout: float = 0.1,
                           gradient_accumulation_steps: int = 1, seed: int = 0) -> TaskModel:
    """A Functional `TaskModel` returning logits [batch, seq, num_labels]."""
    inputs = model_inputs(input_names)
    freeze_unused_pooler(backbone)  # per-token heads never read the pooler
    hidden, _ = backbone_outputs(backbone, inputs)
    hidden = tf_keras.layers.Dropout(dropout, seed=seed, name="classifier_dropout")(hidden)
    logits = tf_keras.layers.Dense(num_labels, kernel_initializer=head_initializer(backbone, seed), dtype="float32",
                                   name="classifier")(hidden)
    return TaskModel(inputs=inputs, outputs=logits, name="token_classifier",
                     gradient_accumulation_steps=gradient_accumulation_steps)
