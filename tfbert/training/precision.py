"""Keras mixed-precision policies (set before any layer is built)."""
from __future__ import annotations

import tf_keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_precision(policy: str) -> tf_keras.mixed_precision.Policy:
    """Set the global policy for tf_keras (the Keras that transformers' TF models use).

    The classifier's last layer is always created with ``dtype="float32"`` so logits, softmax and
    loss stay in float32; ``mixed_float16`` also wraps the optimizer in a LossScaleOptimizer
    (see `tfbert.training.optimization.make_optimizer`), which skips steps with inf/NaN
    gradients and lowers the loss scale instead of writing NaNs into the weights.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown precision policy {policy!r}")
    tf_keras.mixed_precision.set_global_policy(policy)
    return tf_keras.mixed_precision.global_policy()
