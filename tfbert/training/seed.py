"""Repeatable runs."""
from __future__ import annotations

import tf_keras


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (weight init, dropout, shuffling)."""
    tf_keras.utils.set_random_seed(seed)
