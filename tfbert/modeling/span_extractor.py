"""Extractive QA: backbone -> per-token dense(2) -> start and end logits (float32)."""
from __future__ import annotations

import tf_keras

from tfbert.modeling.backbone import backbone_outputs, freeze_unused_pooler, head_initializer, model_inputs
from tfbert.modeling.task_model import TaskModel

START, END = "start_logits", "end_logits"


def build_span_model(backbone, input_names: list[str], gradient_accumulation_steps: int = 1,
                     seed: int = 0) -> TaskModel:
    """A Functional `TaskModel` with outputs ``{"start_logits": [b, seq], "end_logits": [b, seq]}``.

    Labels for `fit` use the same keys (token positions), as Keras matches targets to outputs by name.
    """
    inputs = model_inputs(input_names)
    freeze_unused_pooler(backbone)  # span heads never read the pooler
    hidden, _ = backbone_outputs(backbone, inputs)
    logits = tf_keras.layers.Dense(2, kernel_initializer=head_initializer(backbone, seed), dtype="float32",
                                   name="qa_outputs")(hidden)
    start = tf_keras.layers.Lambda(lambda t: t[..., 0], name=START, dtype="float32")(logits)
    end = tf_keras.layers.Lambda(lambda t: t[..., 1], name=END, dtype="float32")(logits)
    return TaskModel(inputs=inputs, outputs={START: start, END: end}, name="span_extractor",
                     gradient_accumulation_steps=gradient_accumulation_steps)
