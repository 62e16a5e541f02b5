"""The names of a model's token features: what the data layer stores and the model layer takes in.

Its own module, free of `datasets` and TensorFlow, so the model and serving layers read the names
without importing the tokenizing code (`tfbert.data.encoding`).
"""
from __future__ import annotations

ATTENTION_MASK = "attention_mask"


def token_feature_names(tokenizer) -> list[str]:
    """The tokenizer's per-token features that tfbert stores (``input_ids``, ``token_type_ids``…).

    The attention mask is not stored: batching makes it from the padding.
    """
    return [n for n in tokenizer.model_input_names if n != ATTENTION_MASK]


__all__ = ["ATTENTION_MASK", "token_feature_names"]
