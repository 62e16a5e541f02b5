"""Token classification: backbone -> per-token dropout -> dense logits (float32)."""
from __future__ import annotations

import tf_keras

from tfbert.modeling.classifier import model_inputs
from tfbert.modeling.task_model import TaskModel


def build_token_classifier(backbone, num_labels: int, input_names: list[str], dropout: float = 0.1,
                           gradient_accumulation_steps: int = 1, seed: int = 0) -> TaskModel:
    """A Functional `TaskModel` returning logits [batch, seq, num_labels]."""
    inputs = model_inputs(input_names)
    main = getattr(backbone, backbone.base_model_prefix)
    if getattr(main, "pooler", None) is not None:
        main.pooler.trainable = False  # per-token heads never read the pooler
    hidden = backbone(inputs).last_hidden_state
    hidden = tf_keras.layers.Dropout(dropout, seed=seed, name="classifier_dropout")(hidden)
    initializer = tf_keras.initializers.TruncatedNormal(stddev=getattr(backbone.config, "initializer_range", 0.02),
                                                        seed=seed)
    logits = tf_keras.layers.Dense(num_labels, kernel_initializer=initializer, dtype="float32",
                                   name="classifier")(hidden)
    return TaskModel(inputs=inputs, outputs=logits, name="token_classifier",
                     gradient_accumulation_steps=gradient_accumulation_steps)
